"""A fake Gemini API (Google AI Studio) on loopback, checking what the real one checks.

``POST /v1beta/models/{model}:generateContent`` answers whole and
``:streamGenerateContent?alt=sse`` as SSE, with the plumbing of
``tests/fake_upstream.py`` (scripted ``Reply`` objects, recorded requests,
the same misbehaviours).  Before answering it refuses, as Gemini does, with
Google's error body: a missing or wrong ``x-goog-api-key``; a field Gemini
does not know anywhere in the parts of the body it checks (a misspelt or
another API's field); a role other than ``user``/``model``; an empty turn; and
a function-call step of the current turn sent back without the thought
signature it came with (any signature this fake ever sent counts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.fake_upstream import FakeUpstream, Reply, _Handler, _words, last_user_text, sse_data

GEMINI_TEXT = "Hello from the fake Gemini upstream."
GEMINI_KEY = "AIza-test-gemini-SECRET"
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 8, "totalTokenCount": 20,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]}

_BODY_KEYS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
              "cachedContent", "labels"}
_CONTENT_KEYS = {"role", "parts"}
_PART_KEYS = {"text", "thought", "thoughtSignature", "inlineData", "fileData", "functionCall", "functionResponse",
              "executableCode", "codeExecutionResult", "videoMetadata", "partMetadata"}
_GENERATION_KEYS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
                    "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
                    "responseJsonSchema", "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities",
                    "mediaResolution", "speechConfig"}
_TOOL_KEYS = {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"}
_DECLARATION_KEYS = {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema",
                     "behavior"}
_SIGNATURE = re.compile(rb'"thoughtSignature":\s*"([^"]+)"')


def gemini_error(status: int, message: str, code: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": code}}


def gemini_part_call(name: str, args: dict[str, Any], signature: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def gemini_response(
    text: str | None = GEMINI_TEXT, calls: Sequence[dict[str, Any]] = (), *, model: str = "gemini-2.5-flash",
    finish: str = "STOP", usage: dict[str, Any] | None = None, thought: str | None = None,
) -> dict[str, Any]:
    """A whole ``GenerateContentResponse``: a thought summary, ``text``, then
    the function-call parts ``calls`` (``gemini_part_call``)."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    if text is not None:
        parts.append({"text": text})
    parts += calls
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage or USAGE,
        "modelVersion": model,
        "responseId": "fakeGeminiResponse01",
    }


def gemini_sse(
    text: str | None, calls: Sequence[dict[str, Any]] = (), *, model: str = "gemini-2.5-flash",
    finish: str = "STOP", usage: dict[str, Any] | None = None,
) -> list[bytes]:
    """A stream as Gemini sends one: the text a word a chunk, the function
    calls whole in one chunk, the finish reason and the usage in the last."""
    head = {"modelVersion": model, "responseId": "fakeGeminiStream01"}

    def chunk(parts: list[dict[str, Any]], **candidate: Any) -> bytes:
        body = {"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0, **candidate}],
                "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}, **head}
        return sse_data(body)

    chunks = [chunk([{"text": word}]) for word in _words(text)] if text else []
    if calls:
        chunks.append(chunk(list(calls)))
    last = {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": finish, "index": 0}],
            "usageMetadata": usage or USAGE, **head}
    return [*chunks, sse_data(last)]


def problem(body: Any) -> str | None:
    """What Gemini would refuse in ``body``, in its words; None for a body it takes."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    unknown = _unknown(body, _BODY_KEYS, "")
    if unknown:
        return unknown
    if not body.get("contents"):
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(body["contents"]):
        where = f"contents[{i}]"
        if (found := _unknown(content, _CONTENT_KEYS, where)) is not None:
            return found
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. ({where}.role: {content.get('role')!r})"
        if not content.get("parts"):
            return f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        for j, part in enumerate(content["parts"]):
            if (found := _unknown(part, _PART_KEYS, f"{where}.parts[{j}]")) is not None:
                return found
            response = part.get("functionResponse")
            if response is not None and not isinstance(response.get("response"), dict):
                return f"* {where}.parts[{j}].function_response.response: must be an object"
    if (found := _unknown(body.get("generationConfig") or {}, _GENERATION_KEYS, "generation_config")) is not None:
        return found
    for i, tool in enumerate(body.get("tools") or []):
        if (found := _unknown(tool, _TOOL_KEYS, f"tools[{i}]")) is not None:
            return found
        for j, declaration in enumerate(tool.get("functionDeclarations") or []):
            if (found := _unknown(declaration, _DECLARATION_KEYS, f"tools[{i}].function_declarations[{j}]")) is not None:
                return found
    return None


def _unknown(obj: dict[str, Any], known: set[str], where: str) -> str | None:
    for key in obj:
        if key not in known:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
    return None


def missing_signature(body: dict[str, Any], issued: set[str]) -> str | None:
    """Gemini's check of the current turn (the model steps since the last user
    turn with text): each step's first function call carries a signature it made."""
    contents = body["contents"]
    start = 0
    for i, content in enumerate(contents):
        if content["role"] == "user" and any("text" in p for p in content["parts"]):
            start = i + 1
    for i in range(start, len(contents)):
        calls = [p for p in contents[i]["parts"] if "functionCall" in p]
        if contents[i]["role"] == "model" and calls:
            signature = calls[0].get("thoughtSignature")
            if signature not in issued:
                name = calls[0]["functionCall"].get("name")
                return (f"Function call is missing a thought_signature in functionCall parts. This is required for "
                        f"tools to work correctly, and missing thought_signature may lead to degraded model "
                        f"performance. Additional data, function call `default_api:{name}` , position {i + 1}. "
                        f"Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
    return None


class _GeminiHandler(_Handler):
    async def post(self, model: str, method: str) -> None:  # type: ignore[override]
        self.streaming = method == "streamGenerateContent"
        self.model = model
        fake: FakeGemini = self.upstream  # type: ignore[assignment]
        refusal = self.refusal()
        if refusal is not None:
            fake.script.appendleft(refusal)
        elif fake.script and fake.script[0] is not None:
            for data in (fake.script[0].sse or [fake.script[0].body if isinstance(fake.script[0].body, bytes)
                                                else json.dumps(fake.script[0].body or {}).encode()]):
                fake.issued.update(s.decode() for s in _SIGNATURE.findall(data))
        await super().post()

    def refusal(self) -> Reply | None:
        fake: FakeGemini = self.upstream  # type: ignore[assignment]
        if fake.key is not None and self.request.headers.get("x-goog-api-key") != fake.key:
            return Reply(status=400, body=gemini_error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"))
        if self.streaming and self.get_query_argument("alt", None) != "sse":
            return Reply(status=400, body=gemini_error(400, "this fake streams only with alt=sse", "INVALID_ARGUMENT"))
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        message = problem(body) or missing_signature(body, fake.issued)
        if message is not None:
            return Reply(status=400, body=gemini_error(400, message, "INVALID_ARGUMENT"))
        return None

    def default_reply(self, body: Any) -> Reply:
        text = f"{GEMINI_TEXT} You said: {_last_user_text(body)}"
        if self.streaming:
            return Reply(sse=gemini_sse(text, model=self.model), chunk_delay=self.upstream.stream_chunk_delay)
        return Reply(body=gemini_response(text, model=self.model))


def _last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            return "".join(p.get("text", "") for p in content.get("parts") or [])
    return ""


class FakeGemini(FakeUpstream):
    """``key``: the API key it takes (None: any)."""

    def __init__(self, key: str | None = GEMINI_KEY) -> None:
        super().__init__()
        self.key = key
        self.issued: set[str] = set()  # the thought signatures it has sent

    @property
    def base_url(self) -> str:
        return self.url + "/v1beta"

    def start(self) -> FakeGemini:
        route = r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)"
        app = tornado.web.Application([(route, _GeminiHandler, {"upstream": self, "kind": "gemini"})])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self


__all__ = ["FakeGemini", "GEMINI_KEY", "GEMINI_TEXT", "gemini_error", "gemini_part_call", "gemini_response",
           "gemini_sse", "last_user_text"]
