"""A model for the fake upstreams that answers the conformance battery as a
competent model would, and the faults that break it on purpose.

``conformance_model(faults)`` is a ``FakeUpstream.chooser``: it reads each
request with the router's own request parser (any of the three APIs), works
out the answer the battery's prompt calls for (the word it asks for, the
codeword of the system prompt, the surname of an earlier turn, the count cut
at the stop sequence, the story cut at ``max_tokens``, a call of the weather
tool per city named, the tool's result read back, the colour of the image's
first pixel, a 404 for a model it does not serve), and sends it in the
upstream's wire shape with ``fake_upstream.answer``, whole or streamed.

``ConformanceGemini`` is a ``FakeGemini`` giving the same answers in Gemini's
shape, ``ConformanceBedrock`` a ``FakeBedrock`` giving them to Claude's
InvokeModel (their requests name the model and the streaming mode in the
path, which a chooser does not see).

``faults`` names what to get wrong, each the way a broken upstream does:

    drop_usage        no usage in a whole answer; zero counts (or no usage chunk) in a stream
    out_of_order      a stream's last two events before its end swapped (Gemini's:
                      its finish before its last content)
    html_500          a 500 HTML page for the model it does not serve
    ignore_stop       the count not cut at the stop sequence
    mangle_arguments  tool-call arguments that are not JSON (or, where the wire
                      carries an object, not the schema's)
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import tornado.escape
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.fake_bedrock import FakeBedrock, _BedrockHandler, bedrock_error, frames_of
from tests.fake_gemini import FakeGemini, _GeminiHandler, gemini_error, gemini_part_call, gemini_response, gemini_sse
from tests.fake_upstream import Reply, answer, responses_response
from tests.upstream_faults import error_body
from tornrouter.canonical import ChatRequest, Image, Message, Text, Tool, ToolCall, ToolResult
from tornrouter.conformance.battery import UNKNOWN_MODEL
from tornrouter.formats import codec_for

FAULTS = ("drop_usage", "out_of_order", "html_500", "ignore_stop", "mangle_arguments")
CITIES = ("Paris", "Tokyo")
STORY = " ".join(["The keeper climbed the stairs again."] * 120)
HTML_500 = b"<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>"


def server_error_page() -> Reply:
    """The ``html_500`` fault's answer: what a crashed app server behind a proxy sends."""
    return Reply(status=500, body=HTML_500, headers={"Content-Type": "text/html"})


def conformance_model(faults: frozenset[str] = frozenset()) -> Callable[[str, Any], Reply | None]:
    unknown = set(faults) - set(FAULTS)
    assert not unknown, f"no such fault: {unknown}"

    def choose(kind: str, body: Any) -> Reply | None:
        if kind == "count_tokens" or not isinstance(body, dict):
            return None
        if body.get("model") == UNKNOWN_MODEL:
            if "html_500" in faults:
                return server_error_page()
            return Reply(status=404, body=error_body(kind, f"The model '{UNKNOWN_MODEL}' does not exist", "not_found_error"))
        return battery_answer(kind, body, faults)

    return choose


def battery_answer(kind: str, body: dict[str, Any], faults: frozenset[str]) -> Reply:
    """The answer to a request body of one of the three APIs, whole or streamed as it asks."""
    request = codec_for(kind).parse_request(orjson.dumps(body))
    text, calls, cut = respond(request, faults, kind)
    reply = answer(kind, body, text, calls)
    if reply.sse is not None:
        return stream_faults(kind, reply, faults)
    return whole_answer(kind, body, reply, text, calls, cut, request, faults)


def respond(request: ChatRequest, faults: frozenset[str], kind: str) -> tuple[str | None, list[tuple[str, str, str]], str | None]:
    """The answer's text, its tool calls, and why it was cut short (``max_tokens``,
    a stop sequence, or None)."""
    last = request.messages[-1]
    results = [block for block in last.content if isinstance(block, ToolResult)]
    if results:
        return "The tool says: " + " ".join(block.content[0].text for block in results), [], None
    question = last.text()
    if request.tools:
        named = [city for city in CITIES if city in question]
        arguments = [json.dumps({"city": city}) for city in named]
        if "mangle_arguments" in faults:
            whole = kind == "gemini" or (kind == "anthropic" and not request.stream)  # the wire carries an object
            arguments = ['{"town": "Paris"}' if whole else text[:-3] for text in arguments]
        return None, [(f"call_fake_{n}", request.tools[0].name, args) for n, args in enumerate(arguments)], None
    images = [block for block in last.content if isinstance(block, Image)]
    if images:
        return colour(base64.b64decode(images[0].data or "")).capitalize() + ".", [], None
    if "codeword" in question:
        return re.search(r"codeword is (\w+)", request.system_text()).group(1), [], None
    if "surname" in question:
        earlier = " ".join(message.text() for message in request.messages[:-1])
        return re.search(r"My name is \w+ (\w+)", earlier).group(1), [], None
    if question.startswith("Count from 1 to 10"):
        text = ", ".join(str(n) for n in range(1, 11))
        for stop in request.stop if "ignore_stop" not in faults else ():
            if stop in text:
                return text[: text.index(stop)], [], stop
        return text, [], None
    if match := re.search(r"one word: (\w+)", question):
        return match.group(1), [], None
    if question.startswith("Say hello"):
        return "Hello there, nice to meet you!", [], None
    words = STORY.split(" ")
    if request.max_tokens is not None and len(words) > request.max_tokens:
        return " ".join(words[: request.max_tokens]), [], "max_tokens"
    return STORY, [], None


def whole_answer(kind: str, body: dict[str, Any], reply: Reply, text: str | None, calls: list, cut: str | None,
                 request: ChatRequest, faults: frozenset[str]) -> Reply:
    """``reply`` with the stop reason and output tokens ``cut`` calls for."""
    if kind == "responses":
        if cut == "max_tokens":
            usage = {"input_tokens": 12, "output_tokens": request.max_tokens, "total_tokens": 12 + request.max_tokens}
            reply = Reply(body=responses_response(body, text, calls, status="incomplete", usage=usage))
    elif cut == "max_tokens":
        if kind == "openai":
            reply.body["choices"][0]["finish_reason"] = "length"
            reply.body["usage"]["completion_tokens"] = request.max_tokens
        else:
            reply.body["stop_reason"] = "max_tokens"
            reply.body["usage"]["output_tokens"] = request.max_tokens
    elif cut is not None and kind == "anthropic":
        reply.body["stop_reason"], reply.body["stop_sequence"] = "stop_sequence", cut
    if "drop_usage" in faults:
        reply.body.pop("usage", None)
    return reply


def stream_faults(kind: str, reply: Reply, faults: frozenset[str]) -> Reply:
    chunks = list(reply.sse or [])
    if "drop_usage" in faults:
        chunks = [chunk for chunk in (_rewrite(chunk, _no_usage) for chunk in chunks) if chunk is not None]
    if "out_of_order" in faults:
        chunks[-3], chunks[-2] = chunks[-2], chunks[-3]
    return Reply(sse=chunks)


def _no_usage(payload: dict[str, Any]) -> dict[str, Any] | None:
    """An OpenAI usage chunk dropped; any other event's usage counts zeroed."""
    if payload.get("object") == "chat.completion.chunk" and not payload.get("choices"):
        return None
    for holder in (payload, payload.get("message"), payload.get("response")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            holder["usage"] = {key: 0 if isinstance(value, int) else value for key, value in holder["usage"].items()}
    return payload


def _rewrite(chunk: bytes, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> bytes | None:
    """One SSE event with its JSON data changed by ``change`` (None drops the event)."""
    lines = chunk.decode().split("\n")
    for number, line in enumerate(lines):
        if line.startswith("data: ") and line != "data: [DONE]":
            payload = change(json.loads(line[len("data: "):]))
            if payload is None:
                return None
            lines[number] = "data: " + json.dumps(payload)
    return "\n".join(lines).encode()


def colour(png: bytes) -> str:
    """The name of the colour of a PNG's first pixel (8-bit RGB, unfiltered first row)."""
    offset, idat = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        if png[offset + 4 : offset + 8] == b"IDAT":
            idat += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    pixel = zlib.decompress(idat)[1:4]
    return ("red", "green", "blue")[max(range(3), key=lambda channel: pixel[channel])]


class ConformanceGemini(FakeGemini):
    """A ``FakeGemini`` (key, request checks, thought signatures) that answers
    the battery as ``conformance_model`` does, with ``faults``."""

    def __init__(self, faults: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.faults = faults

    def start(self) -> ConformanceGemini:
        route = r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)"
        app = tornado.web.Application([(route, _BatteryGeminiHandler, {"upstream": self, "kind": "gemini"})])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self


class _BatteryGeminiHandler(_GeminiHandler):
    def default_reply(self, body: Any) -> Reply:
        fake: ConformanceGemini = self.upstream  # type: ignore[assignment]
        faults = fake.faults
        if self.model == UNKNOWN_MODEL:
            if "html_500" in faults:
                return server_error_page()
            message = f"models/{self.model} is not found for API version v1beta, or is not supported for generateContent."
            return Reply(status=404, body=gemini_error(404, message, "NOT_FOUND"))
        request = gemini_request(body, self.model, self.streaming)
        text, calls, cut = respond(request, faults, "gemini")
        parts = []
        for number, (_, name, arguments) in enumerate(calls):
            signature = None
            if number == 0:  # Gemini signs a step's first call, and refuses it sent back unsigned
                signature = f"conformance-signature-{len(fake.issued)}"
                fake.issued.add(signature)
            parts.append(gemini_part_call(name, json.loads(arguments), signature))
        output = request.max_tokens if cut == "max_tokens" else 8
        usage = {"promptTokenCount": 12, "candidatesTokenCount": output, "totalTokenCount": 12 + output}
        finish = "MAX_TOKENS" if cut == "max_tokens" else "STOP"
        if not self.streaming:
            whole = gemini_response(text, parts, model=self.model, finish=finish, usage=usage)
            if "drop_usage" in faults:
                del whole["usageMetadata"]
            return Reply(body=whole)
        chunks = gemini_sse(text, parts, model=self.model, finish=finish, usage=usage)
        if "drop_usage" in faults:
            chunks = [_rewrite(chunk, _no_gemini_usage) for chunk in chunks]
        if "out_of_order" in faults:
            chunks[-2], chunks[-1] = chunks[-1], chunks[-2]  # the finish before the last content
        return Reply(sse=chunks)


def _no_gemini_usage(payload: dict[str, Any]) -> dict[str, Any]:
    payload.pop("usageMetadata", None)
    return payload


def gemini_request(body: dict[str, Any], model: str, stream: bool) -> ChatRequest:
    """What ``respond`` reads of a Gemini request body, as a canonical request."""
    roles = {"user": "user", "model": "assistant"}
    messages = []
    for content in body["contents"]:
        blocks: list[Any] = []
        for part in content["parts"]:
            if "text" in part:
                blocks.append(Text(part["text"]))
            elif "inlineData" in part:
                blocks.append(Image(media_type=part["inlineData"]["mimeType"], data=part["inlineData"]["data"]))
            elif "functionCall" in part:
                blocks.append(ToolCall("", part["functionCall"]["name"], part["functionCall"].get("args") or {}))
            elif "functionResponse" in part:
                response = part["functionResponse"]
                blocks.append(ToolResult(response["name"], [Text(json.dumps(response["response"]))]))
        messages.append(Message(roles[content["role"]], blocks))
    settings = body.get("generationConfig") or {}
    return ChatRequest(
        model, "openai", messages,
        system=[Text(part["text"]) for part in (body.get("systemInstruction") or {}).get("parts") or []],
        max_tokens=settings.get("maxOutputTokens"), stop=settings.get("stopSequences") or [], stream=stream,
        tools=[Tool(d["name"]) for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []],
    )


class ConformanceBedrock(FakeBedrock):
    """A ``FakeBedrock`` (SigV4 checked) whose InvokeModel answers the battery
    as ``conformance_model`` does, with ``faults``."""

    def __init__(self, faults: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.faults = faults

    def start(self) -> ConformanceBedrock:
        # Converse too: a model id that is not Claude's goes there, the unknown one included.
        route = r"/model/([^/]+)/(invoke|invoke-with-response-stream|converse|converse-stream)"
        app = tornado.web.Application([(route, _BatteryBedrockHandler, {"upstream": self, "kind": "anthropic"})])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self


class _BatteryBedrockHandler(_BedrockHandler):
    async def post(self, model: str, method: str) -> None:  # type: ignore[override]
        self.model = tornado.escape.url_unescape(model)
        await super().post(model, method)

    def default_reply(self, body: Any) -> Reply:
        faults: frozenset[str] = self.upstream.faults  # type: ignore[attr-defined]
        if self.model == UNKNOWN_MODEL:
            if "html_500" in faults:
                return server_error_page()
            return Reply(status=400, body=bedrock_error("The provided model identifier is invalid."),
                         headers={"x-amzn-ErrorType": "ValidationException:"})
        wire = {key: value for key, value in body.items() if key != "anthropic_version"}
        reply = battery_answer("anthropic", {**wire, "model": self.model, "stream": self.streaming}, faults)
        if reply.sse is not None:
            reply.sse = frames_of(reply.sse)
        return reply
