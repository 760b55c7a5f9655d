"""A fast fake provider for the benchmarks: canned bytes in the three upstream APIs.

``POST /v1/chat/completions`` (and ``/chat/completions``) answers with an OpenAI
``chat.completion``, ``POST /v1/responses`` (and ``/responses``) with a
Responses API ``response``, ``POST /v1/messages`` with an Anthropic
``message``; a body with ``"stream": true`` gets the same answer as an SSE
stream in that API's wire format (OpenAI ``chat.completion.chunk`` lines ending
in ``data: [DONE]``, with a usage chunk when ``stream_options.include_usage`` is
set; the Responses API's numbered ``response.*`` events; Anthropic's
``message_start`` ... ``message_stop`` events).  ``GET /health`` answers ``ok``.

A streamed answer has ``--stream-tokens`` text deltas, or as many as the
request's ``max_tokens`` (or ``max_completion_tokens``, ``max_output_tokens``) asks for (so one upstream serves
streams of every size); each size is serialized once, on first use.  Paced,
the first event waits ``--first-token-ms`` and every later one
``--token-delay-ms``, as a model's would.

It shares a core with the load generator, so every microsecond it spends is one
the router under test does not get measured against.  That is why it sits on
Tornado's connection-level interface (``HTTPServerConnectionDelegate``) rather
than ``tornado.web``: no routing table, no ``RequestHandler`` per request, and
the JSON body is parsed only when it may ask for a stream.  It records nothing
and checks nothing; the test suite's ``tests/fake_upstream.py`` is the one that
does.

    python scripts/bench_upstream.py --port 9001 [--stream-tokens 16] [--first-token-ms 0] [--token-delay-ms 0]

``--port 0`` picks a free port; the first line on stdout is ``listening <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from http.client import responses
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

OPENAI_MODEL = "gpt-4o-mini"
RESPONSES_MODEL = "gpt-5-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
TEXT = "Hello! This is a canned answer from the benchmark upstream."
CREATED = 1700000000


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def openai_completion() -> bytes:
    return _json(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": OPENAI_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 24,
                "completion_tokens": 14,
                "total_tokens": 38,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def anthropic_message() -> bytes:
    return _json(
        {
            "id": "msg_bench0001",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 24,
                "output_tokens": 14,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
    )


def _response(status: str, text: str | None, tokens: int) -> dict[str, Any]:
    """A Responses API ``response`` object: in progress and empty, or done with ``text``."""
    output = []
    if text is not None:
        output.append({"id": "msg_bench0001", "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
    usage = None
    if status != "in_progress":
        usage = {"input_tokens": 24, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": tokens,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 24 + tokens}
    return {
        "id": "resp_bench0001", "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": RESPONSES_MODEL,
        "output": output, "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "service_tier": "default", "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "metadata": {},
    }


def responses_response() -> bytes:
    return _json(_response("completed", TEXT, 14))


WORDS = TEXT.split()


def _pieces(tokens: int) -> list[str]:
    """``tokens`` deltas of a word each, as a model streams them (the first one
    ``Hello!``, which the load generator's first-token marker looks for)."""
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(max(1, tokens))]


def openai_stream(tokens: int, include_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat completion, one ``data:`` line each."""

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": OPENAI_MODEL,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk({"content": piece}, None) for piece in _pieces(tokens)]
    events.append(chunk({}, "stop"))
    if include_usage:
        usage = chunk({}, None)
        usage["choices"] = []
        usage["usage"] = {"prompt_tokens": 24, "completion_tokens": tokens, "total_tokens": 24 + tokens}
        events.append(usage)
    return [b"data: " + _json(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def responses_stream(tokens: int) -> list[bytes]:
    """The SSE events of a streamed Responses API answer, named and numbered."""
    pieces = _pieces(tokens)
    text = "".join(pieces)
    ids = {"item_id": "msg_bench0001", "output_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {"id": "msg_bench0001", "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    started = _response("in_progress", None, 0)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **ids, "content_index": 0, "part": {**part, "text": ""}},
    ]
    events += [{"type": "response.output_text.delta", **ids, "content_index": 0, "delta": p, "logprobs": []} for p in pieces]
    events += [
        {"type": "response.output_text.done", **ids, "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "content_index": 0, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response("completed", text, tokens)},
    ]
    return [b"event: " + e["type"].encode() + b"\ndata: " + _json({**e, "sequence_number": n}) + b"\n\n"
            for n, e in enumerate(events)]


def anthropic_stream(tokens: int) -> list[bytes]:
    """The SSE events of a streamed message, each with its ``event:`` line."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_bench0001",
                "type": "message",
                "role": "assistant",
                "model": ANTHROPIC_MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 24,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "service_tier": "standard",
                },
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        for piece in _pieces(tokens)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": tokens},
        },
        {"type": "message_stop"},
    ]
    return [b"event: " + e["type"].encode() + b"\ndata: " + _json(e) + b"\n\n" for e in events]


class Canned:
    """Every answer, serialized once: the whole ones at start, each stream on its first use."""

    def __init__(self, stream_tokens: int, first_token_delay: float, token_delay: float) -> None:
        self.whole = {"openai": openai_completion(), "anthropic": anthropic_message(), "responses": responses_response()}
        self.stream_tokens = stream_tokens
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self._streams: dict[tuple[str, int, bool], list[bytes]] = {}

    def stream(self, api: str, request: dict[str, Any]) -> list[bytes]:
        """``api``: ``openai``, ``anthropic`` or ``responses``."""
        tokens = request.get("max_tokens") or request.get("max_completion_tokens") or request.get("max_output_tokens")
        tokens = tokens if isinstance(tokens, int) and tokens > 0 else self.stream_tokens
        usage = api == "openai" and bool((request.get("stream_options") or {}).get("include_usage"))
        key = (api, tokens, usage)
        if key not in self._streams:
            if api == "openai":
                self._streams[key] = openai_stream(tokens, usage)
            else:
                self._streams[key] = responses_stream(tokens) if api == "responses" else anthropic_stream(tokens)
        return self._streams[key]


_JSON_HEADERS = (("Content-Type", "application/json"),)
_APIS = {"/v1/chat/completions": "openai", "/chat/completions": "openai", "/v1/messages": "anthropic",
         "/v1/responses": "responses", "/responses": "responses"}
_SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))


class _Exchange(httputil.HTTPMessageDelegate):
    """One request on a connection: collect the body, then answer."""

    def __init__(self, canned: Canned, connection: httputil.HTTPConnection) -> None:
        self.canned = canned
        self.connection = connection
        self.method = ""
        self.path = ""
        self.chunks: list[bytes] = []
        self.streaming: asyncio.Future[None] | None = None

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.method = start_line.method
        self.path = start_line.path.partition("?")[0]

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        body = b"".join(self.chunks)
        if self.method == "GET" and self.path == "/health":
            self.reply(200, b"ok", (("Content-Type", "text/plain"),))
        elif self.method != "POST" or self.path not in _APIS:
            self.reply(404, b'{"error":"not found"}', _JSON_HEADERS)
        else:
            api = _APIS[self.path]
            request = self.stream_request(body)
            if request is None:
                self.reply(200, self.canned.whole[api], _JSON_HEADERS)
            else:
                events = self.canned.stream(api, request)
                self.streaming = asyncio.ensure_future(self.stream(events))  # held: the loop keeps only weak refs

    @staticmethod
    def stream_request(body: bytes) -> dict[str, Any] | None:
        """The parsed body when it asks for a stream, else None (the fast path:
        a body that does not mention ``"stream"`` is not parsed at all)."""
        if b'"stream"' not in body:
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        return request if isinstance(request, dict) and request.get("stream") is True else None

    def reply(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        fields = httputil.HTTPHeaders(headers)
        fields["Content-Length"] = str(len(body))
        start = httputil.ResponseStartLine("HTTP/1.1", status, responses.get(status, "Unknown"))
        self.connection.write_headers(start, fields, body)
        self.connection.finish()

    async def stream(self, events: list[bytes]) -> None:
        # No Content-Length on an HTTP/1.1 answer: Tornado sends it chunked, one
        # chunk per event, as a real provider's server does.  Tornado leaves
        # Nagle's algorithm on until finish(): small events would then wait for
        # the client's delayed ACK (up to 40 ms each), so turn it off first.
        first, delay = self.canned.first_token_delay, self.canned.token_delay
        try:
            self.connection.stream.set_nodelay(True)
            await self.connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", 200, "OK"), httputil.HTTPHeaders(_SSE_HEADERS)
            )
            for number, event in enumerate(events):
                pause = first if number == 0 else delay
                if pause:
                    await asyncio.sleep(pause)
                await self.connection.write(event)
            self.connection.finish()
        except StreamClosedError:
            pass  # the client went away mid-stream: nobody left to answer


class BenchUpstream(httputil.HTTPServerConnectionDelegate):
    def __init__(self, canned: Canned) -> None:
        self.canned = canned

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _Exchange(self.canned, request_conn)


async def serve(host: str, port: int, canned: Canned) -> None:
    sockets = bind_sockets(port, host)
    server = HTTPServer(BenchUpstream(canned))
    server.add_sockets(sockets)
    print(f"listening {sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fast fake OpenAI (chat completions, Responses) + Anthropic upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback only by default)")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: any free port)")
    parser.add_argument("--stream-tokens", type=int, default=16,
                        help="text deltas per streamed answer whose request sets no max_tokens")
    parser.add_argument("--first-token-ms", type=float, default=0.0, help="pause before a stream's first event")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="pause before each later streamed event")
    args = parser.parse_args(argv)
    canned = Canned(args.stream_tokens, args.first_token_ms / 1000, args.token_delay_ms / 1000)
    asyncio.run(serve(args.host, args.port, canned))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
