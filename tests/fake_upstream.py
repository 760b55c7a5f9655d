"""A fake provider on loopback that speaks the upstream APIs for real.

``POST /v1/chat/completions`` and ``/chat/completions`` answer as OpenAI's chat
completions do, ``POST /v1/responses`` and ``/responses`` as OpenAI's
Responses API does, ``POST /v1/messages`` and
``/v1/messages/count_tokens`` as Anthropic does.  Every request is recorded (path,
headers, parsed body).  By default each answers with a canned success built
from the request; tests queue ``Reply`` objects to script what comes next:
another body, an error status, a delay, an SSE stream, a dropped connection,
and the misbehaviours of ``tests/test_faults.py`` (a reset, a body cut short, a
stream that stalls, an answer held until the test releases it).  A ``chooser``
may pick each unscripted answer instead (``scripts/soak.py``'s fault mix;
``tool_agent``, a model that calls a tool and then answers).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.testing import bind_unused_port

OPENAI_TEXT = "Hello from the fake OpenAI upstream."
ANTHROPIC_TEXT = "Hello from the fake Anthropic upstream."
RESPONSES_TEXT = "Hello from the fake Responses upstream."


@dataclass
class Reply:
    """One scripted answer.  ``body`` is a dict (sent as JSON) or bytes (sent
    as is); ``sse`` a list of raw chunks written one by one, each followed by
    ``chunk_delay``; ``drop`` closes the connection without an answer, or,
    with ``sse``, after its chunks (a stream cut mid-way).

    Misbehaviours: ``reset`` makes a drop a TCP reset (RST) rather than a
    close; ``cut_after`` sends a body's first N bytes under its full
    ``Content-Length``, then drops; ``stall_after`` stops an ``sse`` stream
    after N chunks and holds the connection silent until the client leaves;
    ``gate`` holds the answer until the test sets it."""

    status: int = 200
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    sse: list[bytes] | None = None
    chunk_delay: float = 0.0
    drop: bool = False
    reset: bool = False
    cut_after: int | None = None
    stall_after: int | None = None
    gate: asyncio.Event | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def openai_completion(request: dict[str, Any], text: str = OPENAI_TEXT) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 8,
            "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def anthropic_message(request: dict[str, Any], text: str = ANTHROPIC_TEXT) -> dict[str, Any]:
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "unknown"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2,
            "service_tier": "standard",
        },
    }


RESPONSES_USAGE = {
    "input_tokens": 12, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
    "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 20,
}


def responses_echo(request: dict[str, Any]) -> dict[str, Any]:
    """The request fields a Responses API response repeats, as OpenAI fills them in."""
    return {
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": None, "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"), "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None, **(request.get("reasoning") or {})},
        "safety_identifier": None, "service_tier": "default", "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0), "text": request.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
        "top_logprobs": 0, "top_p": request.get("top_p", 1.0), "truncation": "disabled", "user": None,
        "metadata": request.get("metadata") or {},
    }


def responses_response(
    request: dict[str, Any], text: str | None = RESPONSES_TEXT, tool_calls: Sequence[ToolCallSpec] = (),
    *, status: str = "completed", usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole Responses API response: a message with ``text``, a ``function_call`` per call."""
    output: list[dict[str, Any]] = []
    if text is not None:
        output.append({"id": "msg_fake0001", "type": "message", "status": status, "role": "assistant",
                       "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
    for number, (call_id, name, arguments) in enumerate(tool_calls):
        output.append({"id": f"fc_fake{number:04d}", "type": "function_call", "status": "completed",
                       "arguments": arguments, "call_id": call_id, "name": name})
    return {
        "id": "resp_fake0001", "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": request.get("model", "unknown"), "output": output, "usage": usage or RESPONSES_USAGE,
        **responses_echo(request),
    }


def counted_tokens(request: dict[str, Any]) -> int:
    """What the fake's ``count_tokens`` answers: 1000 and a token per character of
    the last user message, so that each request's count can be told apart."""
    return 1000 + len(last_user_text(request))


def last_user_text(request: dict[str, Any]) -> str:
    """The text of the last user message of any API's request body."""
    items = request.get("input")
    if isinstance(items, str):
        return items
    for message in reversed(items or request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
    return ""


def stream_text(request: dict[str, Any], text: str) -> str:
    """The canned streamed answer: ``text`` and the user's words, so that
    concurrent streams can each be checked for their own answer."""
    return f"{text} You said: {last_user_text(request)}"


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


def _thirds(text: str) -> list[str]:
    step = max(1, -(-len(text) // 3))
    return [text[i : i + step] for i in range(0, len(text), step)]


def nginx_error_page(comment: str = "") -> bytes:
    """A 502 page as an nginx in front of an upstream serves one, with a body of
    about 40 kB (some gateways' pages are that big) and ``comment`` (say, the
    key the upstream was sent) in its head."""
    return (
        f"<html>\r\n<head><title>502 Bad Gateway</title><!-- {comment} --></head>\r\n<body>\r\n".encode()
        + b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.27.0</center>\r\n"
        + b"<p>" + b"The upstream server did not answer in time. " * 900 + b"</p>\r\n"
        + b"<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6
        + b"</body>\r\n</html>\r\n"
    )


def sse_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + sse_data(payload)


ToolCallSpec = tuple[str, str, str]  # id, name, arguments (JSON text)


def openai_sse(
    text: str | None, tool_calls: Sequence[ToolCallSpec] = (), *, model: str = "gpt-fake", usage: bool = True
) -> list[bytes]:
    """A chat-completions stream as OpenAI sends one: the role, the text one
    word a chunk, each tool call's id and name then its arguments in pieces, the
    finish reason, the usage chunk (``usage``), ``[DONE]``."""
    head = {"id": "chatcmpl-fakestream", "object": "chat.completion.chunk", "created": 1747000000,
            "model": model, "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse_data({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": word}) for word in _words(text)] if text else []
    for index, (call_id, name, arguments) in enumerate(tool_calls):
        start = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(chunk({"tool_calls": [start]}))
        chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}) for part in _thirds(arguments)]
    chunks.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    if usage:
        chunks.append(sse_data({**head, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}}))
    return [*chunks, b"data: [DONE]\n\n"]


def anthropic_sse(text: str | None, tool_calls: Sequence[ToolCallSpec] = (), *, model: str = "claude-fake") -> list[bytes]:
    """A Messages stream as Anthropic sends one: a text block one word a delta,
    then a ``tool_use`` block per call with its input in pieces; usage 10 in, 8 out."""
    message = {"id": "msg_fakestream", "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
    events = [sse_event("message_start", {"type": "message_start", "message": message}), sse_event("ping", {"type": "ping"})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if text:
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": word} for word in _words(text)]))
    for call_id, name, arguments in tool_calls:
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in ["", *_thirds(arguments)]]
        blocks.append(({"type": "tool_use", "id": call_id, "name": name, "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        events.append(sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        events += [sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = {"stop_reason": "tool_use" if tool_calls else "end_turn", "stop_sequence": None}
    events.append(sse_event("message_delta", {"type": "message_delta", "delta": stop, "usage": {"output_tokens": 8}}))
    events.append(sse_event("message_stop", {"type": "message_stop"}))
    return events


def responses_sse(
    text: str | None, tool_calls: Sequence[ToolCallSpec] = (), *, model: str = "gpt-fake",
    reasoning: str | None = None, encrypted: str | None = None, request: dict[str, Any] | None = None,
) -> list[bytes]:
    """A Responses API stream as OpenAI sends one: the response created and in
    progress, a reasoning item (``reasoning``, its summary, and ``encrypted``
    content) if asked, a message with the text one word a delta, a
    ``function_call`` per call with its arguments in pieces, the response completed."""
    sequence = iter(range(10_000))

    def event(name: str, payload: dict[str, Any]) -> bytes:
        return sse_event(name, {"type": name, **payload, "sequence_number": next(sequence)})

    final = responses_response({"model": model, **(request or {})}, text, tool_calls)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    events = [event("response.created", {"response": started}), event("response.in_progress", {"response": started})]
    output: list[dict[str, Any]] = []
    if reasoning is not None or encrypted is not None:
        item = {"id": "rs_fake0001", "type": "reasoning", "summary": []}
        ids = {"item_id": item["id"], "output_index": len(output)}
        events.append(event("response.output_item.added", {"output_index": len(output), "item": item}))
        done = dict(item)
        if reasoning:
            part = {"type": "summary_text", "text": reasoning}
            events.append(event("response.reasoning_summary_part.added", {**ids, "summary_index": 0, "part": {**part, "text": ""}}))
            events += [event("response.reasoning_summary_text.delta", {**ids, "summary_index": 0, "delta": d}) for d in _words(reasoning)]
            events.append(event("response.reasoning_summary_text.done", {**ids, "summary_index": 0, "text": reasoning}))
            events.append(event("response.reasoning_summary_part.done", {**ids, "summary_index": 0, "part": part}))
            done["summary"] = [part]
        if encrypted is not None:
            done["encrypted_content"] = encrypted
        events.append(event("response.output_item.done", {"output_index": len(output), "item": done}))
        output.append(done)
    for item in final["output"]:
        ids = {"item_id": item["id"], "output_index": len(output)}
        if item["type"] == "message":
            part = item["content"][0]
            events.append(event("response.output_item.added", {"output_index": len(output), "item": {**item, "status": "in_progress", "content": []}}))
            events.append(event("response.content_part.added", {**ids, "content_index": 0, "part": {**part, "text": ""}}))
            events += [event("response.output_text.delta", {**ids, "content_index": 0, "delta": d, "logprobs": []}) for d in _words(part["text"])]
            events.append(event("response.output_text.done", {**ids, "content_index": 0, "text": part["text"], "logprobs": []}))
            events.append(event("response.content_part.done", {**ids, "content_index": 0, "part": part}))
        else:
            events.append(event("response.output_item.added", {"output_index": len(output), "item": {**item, "status": "in_progress", "arguments": ""}}))
            events += [event("response.function_call_arguments.delta", {**ids, "delta": d}) for d in _thirds(item["arguments"])]
            events.append(event("response.function_call_arguments.done", {**ids, "arguments": item["arguments"]}))
        events.append(event("response.output_item.done", {"output_index": len(output), "item": item}))
        output.append(item)
    events.append(event("response.completed", {"response": {**final, "output": output}}))
    return events


def scripted_sse(kind: str, text: str | None, tool_calls: Sequence[ToolCallSpec] = (), **options: Any) -> list[bytes]:
    """The stream an upstream of ``kind`` sends: ``openai_sse``, ``anthropic_sse`` or ``responses_sse``."""
    if kind == "responses":
        return responses_sse(text, tool_calls, **options)
    return openai_sse(text, tool_calls, **options) if kind == "openai" else anthropic_sse(text, tool_calls, **options)


def has_tool_result(kind: str, request: dict[str, Any]) -> bool:
    """Whether a request body of any of the APIs carries a tool's result."""
    if kind == "responses":
        items = request.get("input")
        return isinstance(items, list) and any(
            isinstance(item, dict) and item.get("type") == "function_call_output" for item in items
        )
    for message in request.get("messages") or []:
        if kind == "openai" and message.get("role") == "tool":
            return True
        content = message.get("content")
        if kind == "anthropic" and isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    return False


def answer(kind: str, request: dict[str, Any], text: str | None, tool_calls: Sequence[ToolCallSpec] = ()) -> Reply:
    """The answer an upstream of ``kind`` gives ``request``: ``text`` and
    ``tool_calls``, streamed if the request asked for a stream, else whole."""
    model = request.get("model", "unknown")
    if request.get("stream"):
        options: dict[str, Any] = {"request": request} if kind == "responses" else {}
        return Reply(sse=scripted_sse(kind, text, tool_calls, model=model, **options))
    if kind == "responses":
        return Reply(body=responses_response(request, text, tool_calls))
    if kind == "openai":
        body = openai_completion(request, text or "")
        if tool_calls:
            choice = body["choices"][0]
            choice["message"]["content"] = text
            choice["message"]["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in tool_calls
            ]
            choice["finish_reason"] = "tool_calls"
        return Reply(body=body)
    body = anthropic_message(request, text or "")
    if tool_calls:
        body["content"] = [block for block in body["content"] if text] + [
            {"type": "tool_use", "id": call_id, "name": name, "input": json.loads(arguments)}
            for call_id, name, arguments in tool_calls
        ]
        body["stop_reason"] = "tool_use"
    return Reply(body=body)


def tool_agent(call: ToolCallSpec, final_text: str) -> Callable[[str, Any], Reply]:
    """A ``FakeUpstream.chooser`` that plays a model using a tool: it asks for
    ``call`` until a request carries a tool's result, then answers
    ``final_text``.  An agent's turns (however many it sends) get the answer
    their conversation calls for, not the next one of a fixed script."""

    def choose(kind: str, request: Any) -> Reply:
        if not isinstance(request, dict):
            return Reply(status=400, body={"error": "not JSON"})
        if has_tool_result(kind, request):
            return answer(kind, request, final_text)
        return answer(kind, request, None, [call])

    return choose


class _Handler(tornado.web.RequestHandler):
    def initialize(self, upstream: FakeUpstream, kind: str) -> None:
        self.upstream = upstream
        self.kind = kind
        self.recorded: Recorded | None = None
        self.gone = asyncio.Event()  # the client closed the connection before the answer was finished
        self.dropping = False

    def on_connection_close(self) -> None:
        if not self.dropping and not self.gone.is_set() and self.recorded is not None:
            self.gone.set()
            if self.upstream.keep_requests:
                self.upstream.closed.append(self.recorded)

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, unless the client goes away first; False if it did."""
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def hold(self, gate: asyncio.Event) -> bool:
        """Wait until ``gate`` is set, unless the client goes away first; False if it did."""
        waiters = [asyncio.ensure_future(gate.wait()), asyncio.ensure_future(self.gone.wait())]
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        return not self.gone.is_set()

    def drop(self, reset: bool = False) -> None:
        self.dropping = True
        stream = self.request.connection.stream
        if reset and stream.socket is not None:
            # SO_LINGER with a zero timeout: close() sends RST, as a crashed upstream's kernel does.
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.close()

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = self.request.body
        self.recorded = Recorded(self.request.path, dict(self.request.headers), body)
        if self.upstream.keep_requests:
            self.upstream.requests.append(self.recorded)
        self.upstream.served += 1
        reply = self.upstream.script.popleft() if self.upstream.script else None
        if reply is None and self.upstream.chooser is not None:
            reply = self.upstream.chooser(self.kind, body)
        if reply is None:
            reply = self.default_reply(body)
        if reply.gate is not None and not await self.hold(reply.gate):
            return
        if reply.delay and not await self.pause(reply.delay):
            return
        if reply.drop and reply.sse is None and reply.cut_after is None:
            self.drop(reply.reset)
            return
        self.set_status(reply.status)
        for name, value in reply.headers.items():
            self.set_header(name, value)
        if reply.sse is not None:
            await self._stream(reply)
            return
        payload = reply.body
        if payload is None:
            payload = {"openai": openai_completion, "anthropic": anthropic_message, "responses": responses_response}[self.kind](body)
        if isinstance(payload, dict):
            self.set_header("Content-Type", "application/json")
            payload = json.dumps(payload).encode()
        if reply.cut_after is not None:
            self.set_header("Content-Length", str(len(payload)))
            self.write(payload[: reply.cut_after])
            await self.flush()
            self.drop(reply.reset)
            return
        self.finish(payload)

    def default_reply(self, body: Any) -> Reply:
        if self.kind == "count_tokens":
            return Reply(body={"input_tokens": counted_tokens(body if isinstance(body, dict) else {})})
        if not (isinstance(body, dict) and body.get("stream")):
            return Reply()
        model = body.get("model", "unknown")
        if self.kind == "openai":
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            sse = openai_sse(stream_text(body, OPENAI_TEXT), model=model, usage=usage)
        elif self.kind == "responses":
            sse = responses_sse(stream_text(body, RESPONSES_TEXT), model=model, request=body)
        else:
            sse = anthropic_sse(stream_text(body, ANTHROPIC_TEXT), model=model)
        return Reply(sse=sse, chunk_delay=self.upstream.stream_chunk_delay)

    async def _stream(self, reply: Reply) -> None:
        self.set_header("Content-Type", "text/event-stream")
        try:
            for number, chunk in enumerate(reply.sse or []):
                if number == reply.stall_after:
                    await self.pause(3600)  # silent until the client (or the test's end) closes the connection
                    return
                self.write(chunk)
                await self.flush()
                if reply.chunk_delay and not await self.pause(reply.chunk_delay):
                    return
        except StreamClosedError:
            self.on_connection_close()
            return
        if reply.drop:
            self.drop(reply.reset)
        else:
            self.finish()


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Reply] = deque()
        self.closed: list[Recorded] = []  # requests whose client went away mid-answer
        self.stream_chunk_delay = 0.0  # between the chunks of a canned stream
        # Picks the answer when none is scripted: chooser(kind, body) -> Reply, or None for the canned one.
        self.chooser: Callable[[str, Any], Reply | None] | None = None
        self.keep_requests = True  # False: count requests without keeping them (long soaks)
        self.served = 0
        self.server: HTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> FakeUpstream:
        """Queue replies for the next requests, in order."""
        self.script.extend(replies)
        return self

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeUpstream:
        app = tornado.web.Application(
            [
                (r"/v1/chat/completions", _Handler, {"upstream": self, "kind": "openai"}),
                (r"/chat/completions", _Handler, {"upstream": self, "kind": "openai"}),
                (r"/v1/messages", _Handler, {"upstream": self, "kind": "anthropic"}),
                (r"/v1/messages/count_tokens", _Handler, {"upstream": self, "kind": "count_tokens"}),
                (r"/v1/responses", _Handler, {"upstream": self, "kind": "responses"}),
                (r"/v1/responses/input_tokens", _Handler, {"upstream": self, "kind": "responses"}),
                (r"/responses", _Handler, {"upstream": self, "kind": "responses"}),
            ]
        )
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()
