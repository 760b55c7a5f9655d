"""The Gemini codec, table-driven over the recorded bodies and streams of
``tests/fixtures/gemini`` and ``tests/fixtures/gemini-sse`` (their shapes
checked against the ``google-genai`` SDK's types), and over client requests of
the three APIs with the exact Gemini body and lossy list each makes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.codec_fixtures import FIXTURE_DIR, transcript
from tornrouter.accumulate import Accumulator
from tornrouter.canonical import ChatResponse, Opaque, Text, Thinking, ToolCall, Usage
from tornrouter.formats import codec_for
from tornrouter.formats.gemini.decode import PartReader
from tornrouter.formats.gemini.stream import GeminiStreamDecoder
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate

GEMINI = codec_for("gemini")
SIG = "CiQB0e2Kb7nWo0xCvd5cB2YuVjOh2Aq0ghVt0L5NvhRcmVZB6ZcKXwHR7YpvJ1sUb4lP"
TEXT_SIG = "Cs4BAdHtim9Jd6UmDeFJ8DwhuCDwPgN3WCo"
THOUGHT = "**Answering a greeting**\n\nThe user greets me. Reply briefly."


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURE_DIR / "gemini" / "responses" / f"{name}.json").read_text())


def without_call_ids(response: ChatResponse) -> list[Any]:
    """The content with minted call ids blanked (Gemini sent none)."""
    return [dataclasses.replace(b, id="") if isinstance(b, ToolCall) else b for b in response.content]


# name -> (content, stop reason, usage, response extras)
RESPONSES = {
    "text": ([Text("Héllo wörld — 世界 👋!")], "end_turn", Usage(5, 9), set()),
    "function_calls": (
        [ToolCall("", "get_weather", {"location": "Paris"}), ToolCall("", "get_weather", {"location": "Tōkyō"})],
        "tool_use", Usage(82, 86, reasoning_tokens=60), set(),
    ),
    "thinking": ([Thinking(THOUGHT), Text("Hi there.")], "end_turn", Usage(10, 31, reasoning_tokens=28), set()),
    "safety": ([Text("I can")], "content_filter", Usage(7, 2), set()),
    "prompt_blocked": ([], "content_filter", Usage(7, 0), set()),
    "max_tokens_cached": ([Text("The answer is")], "max_tokens", Usage(52, 5, cache_read_tokens=2048), set()),
    "grounded": ([Text("Spain won Euro 2024.")], "end_turn", Usage(52, 6), {"groundingMetadata"}),
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_a_response_decodes(name: str) -> None:
    content, stop, usage, extras = RESPONSES[name]
    response = GEMINI.decode_response(load(name))
    assert without_call_ids(response) == content
    assert response.stop_reason == stop
    assert response.usage == usage
    assert set(response.extra) == extras
    assert response.id == load(name)["responseId"] and response.model == load(name)["modelVersion"]


@pytest.mark.parametrize("client", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_every_client_api_writes_a_response(name: str, client: str) -> None:
    codec = codec_for(client)
    request = codec.parse_request(json.dumps(_minimal(client)).encode())
    body, lossy = codec.encode_response(GEMINI.decode_response(load(name)), request)
    assert codec.decode_response(body).text() == GEMINI.decode_response(load(name)).text()
    assert ("groundingMetadata" in lossy) == (name == "grounded")


def test_signatures_go_to_the_store_and_to_thinking_blocks() -> None:
    stored: dict[str, str] = {}
    reader = PartReader(carry_signatures=True, on_signature=stored.__setitem__)
    response = GEMINI.decode_response(load("function_calls"), reader)
    first, call, second = response.content
    assert first == Thinking("", "gemini:" + SIG)
    assert stored == {call.id: SIG} and isinstance(second, ToolCall)
    # Without thinking blocks to carry them (OpenAI, Responses clients), only the store has them.
    plain = GEMINI.decode_response(load("thinking"), PartReader())
    assert [type(b) for b in plain.content] == [Thinking, Text] and plain.content[0].signature is None


def test_a_part_of_a_kind_the_clients_lack_is_opaque_and_lossy() -> None:
    body = load("text")
    body["candidates"][0]["content"]["parts"].append({"executableCode": {"language": "PYTHON", "code": "print(1)"}})
    response = GEMINI.decode_response(body)
    assert response.content[-1] == Opaque("gemini", {"type": "executableCode", "executableCode": {"language": "PYTHON", "code": "print(1)"}})
    request = codec_for("openai").parse_request(json.dumps(_minimal("openai")).encode())
    assert "content.executableCode" in codec_for("openai").encode_response(response, request)[1]


def test_a_body_that_is_not_a_response_is_refused() -> None:
    with pytest.raises(ValueError):
        GEMINI.decode_response({"error": {"code": 400, "message": "x", "status": "INVALID_ARGUMENT"}})
    assert GEMINI.parse_error(b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}') == (
        "RESOURCE_EXHAUSTED", "quota")


# --- streams ----------------------------------------------------------------------------------


def decode_stream(name: str, reader: PartReader | None = None) -> list[Any]:
    decoder = GeminiStreamDecoder(reader)
    events = [e for s in SSEDecoder().feed(transcript("gemini-sse", name)) for e in decoder.feed_sse(s)]
    return events + decoder.close()


def accumulate(events: list[Any]) -> ChatResponse:
    acc = Accumulator("gemini")
    for event in events:
        acc.add(event)
    assert acc.finished
    return acc.response()


STREAMS = {"text.txt": "text", "function_calls.txt": "function_calls", "thinking.txt": "thinking"}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_stream_accumulates_to_the_whole_answer(name: str) -> None:
    streamed = accumulate(decode_stream(name))
    whole = GEMINI.decode_response(load(STREAMS[name]))
    assert without_call_ids(streamed) == without_call_ids(whole)
    assert (streamed.stop_reason, streamed.usage) == (whole.stop_reason, whole.usage)


@pytest.mark.parametrize("client", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_stream_translates_to_every_client_api(name: str, client: str) -> None:
    codec = codec_for(client)
    request = codec.parse_request(json.dumps({**_minimal(client), "stream": True}).encode())
    reader = PartReader(carry_signatures=client == "anthropic")
    events = decode_stream(name, reader)
    encoder = codec.stream_encoder(request, source="gemini")
    raw = b"".join(encoder.encode(e) for e in events)
    assert validate(raw, client) == []
    if client == "anthropic" and name != "text.txt":  # the signatures reach the client's thinking blocks
        signatures = [json.loads(s.data)["delta"]["signature"] for s in SSEDecoder().feed(raw)
                      if json.loads(s.data).get("delta", {}).get("type") == "signature_delta"]
        assert signatures == ["gemini:" + (SIG if name == "function_calls.txt" else TEXT_SIG)]


def test_a_stream_cut_before_its_finish_is_an_error() -> None:
    decoder = GeminiStreamDecoder()
    first = next(iter(SSEDecoder().feed(transcript("gemini-sse", "text.txt"))))
    decoder.feed_sse(first)
    (error,) = decoder.close()
    assert error.status == 502 and "ended before it finished" in error.message


# --- requests -----------------------------------------------------------------------------------


def _minimal(client: str) -> dict[str, Any]:
    return {"openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            "anthropic": {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
            "responses": {"model": "m", "input": "hi"}}[client]


PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
REQUESTS = [
    (
        "openai: system, a tool cycle, an image, settings",
        "openai",
        {"model": "m", "max_completion_tokens": 100, "temperature": 0.2, "stop": "END", "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA", "detail": "high"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"SF\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": PARAMS}}],
         "tool_choice": "auto", "logprobs": True},
        {"contents": [
            {"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "SF"}}, "thoughtSignature": "sig-1"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]},
         ], "systemInstruction": {"parts": [{"text": "Be terse."}]},
         "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "d", "parametersJsonSchema": PARAMS}]}],
         "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
         "generationConfig": {"maxOutputTokens": 100, "temperature": 0.2, "stopSequences": ["END"]}},
        ["image.detail", "logprobs"],
    ),
    (
        "anthropic: signed thinking before the call, a failed tool, a document, a foreign signature",
        "anthropic",
        {"model": "m", "max_tokens": 50, "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
         "messages": [
            {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "", "signature": "gemini:sig-A"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "EqQBCkYIBRgCKkD"},
                                              {"type": "text", "text": "Sorry."}]},
            {"role": "user", "content": "ok"},
         ], "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
         "tools": [{"name": "lookup", "input_schema": PARAMS}]},
        {"contents": [
            {"role": "user", "parts": [{"fileData": {"fileUri": "https://x.test/a.pdf", "mimeType": "application/pdf"}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": 1}}, "thoughtSignature": "sig-A"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"error": "boom"}}}]},
            {"role": "model", "parts": [{"text": "Sorry."}]},
            {"role": "user", "parts": [{"text": "ok"}]},
         ], "systemInstruction": {"parts": [{"text": "sys"}]},
         "tools": [{"functionDeclarations": [{"name": "lookup", "description": "", "parametersJsonSchema": PARAMS}]}],
         "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
         "generationConfig": {"maxOutputTokens": 50}},
        ["text.cache_control", "thinking", "parallel_tool_calls"],
    ),
    (
        "responses: a hosted web search becomes Google Search grounding",
        "responses",
        {"model": "m", "input": "news?", "tools": [{"type": "web_search", "search_context_size": "low"}]},
        {"contents": [{"role": "user", "parts": [{"text": "news?"}]}], "tools": [{"googleSearch": {}}]},
        ["tools.web_search.search_context_size"],
    ),
]


@pytest.mark.parametrize("case", REQUESTS, ids=[c[0] for c in REQUESTS])
def test_a_client_request_becomes_a_gemini_body(case: tuple[str, str, dict[str, Any], dict[str, Any], list[str]]) -> None:
    _, client, body, expected, lossy = case
    request = codec_for(client).parse_request(json.dumps(body).encode())
    wire, lost = GEMINI.encode_request(request, signatures={"call_1": "sig-1"})
    assert wire == expected
    assert sorted(lost) == sorted(lossy)


def test_a_gemini_signature_never_reaches_another_provider() -> None:
    """A conversation Gemini began, continued on Anthropic or Bedrock (a
    fallback): the thinking block Gemini signed is dropped, and said lossy."""
    body = {"model": "m", "max_tokens": 50, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": "gemini:sig-A"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}
    request = codec_for("anthropic").parse_request(json.dumps(body).encode())
    for target in ("anthropic", "converse"):
        wire, lossy = codec_for(target).encode_request(request, default_max_tokens=50)
        assert "gemini:" not in json.dumps(wire) and lossy == ["thinking"], target
