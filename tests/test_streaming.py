"""Streaming end to end: both client APIs over both upstream kinds, through real
loopback servers, with the official SDKs' stream helpers and with raw bytes.

Every stream a test reads raw goes through ``read_stream``, which checks it with
``validate_stream.validate``.  Nothing here waits a fixed time: whatever
happens after the client has its bytes (an upstream noticing a closed
connection, a cancelled request's log entry) is polled for against a deadline.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import openai
import pytest
from tornado.httpclient import HTTPResponse

from tests.answers import streamed_text
from tests.codec_fixtures import FIXTURE_DIR, transcript
from tests.configs import base_config
from tests.fake_upstream import OPENAI_TEXT, Reply, openai_sse, scripted_sse, sse_data, sse_event
from tests.plugins_for_tests import RAW_ARGUMENTS
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI, body_for, chat, message
from tornrouter.sse import ServerSentEvent, SSEDecoder
from tornrouter.validate_stream import validate

# libcurl aborts an abandoned transfer at its next progress call, on the loop's next
# turn; a stalled one would otherwise wait for its total timeout.
ABORT_DEADLINE = 5.0

# client endpoint, model, the upstream kind the base config routes it to
PATHS = [
    pytest.param(OPENAI, "gpt-4o", "openai", id="openai<-openai"),
    pytest.param(ANTHROPIC, "claude-x", "anthropic", id="anthropic<-anthropic"),
    pytest.param(OPENAI, "to-anthropic", "anthropic", id="openai<-anthropic"),
    pytest.param(ANTHROPIC, "to-openai", "openai", id="anthropic<-openai"),
]
USAGE = {"openai": (12, 8), "anthropic": (10, 8)}  # (input, output) tokens of the scripted streams
TARGETS = {"gpt-4o": ("oai", "gpt-4o"), "claude-x": ("ant", "claude-x"),  # model -> (provider, model sent)
           "to-anthropic": ("ant", "claude-haiku-4-5"), "to-openai": ("oai", "gpt-4o-mini")}

TOOLS = [
    {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
    {"name": "get_time", "description": "time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]
# name -> (text, [(id, name, arguments)])
SCENARIOS = {
    "text": ("Hello there, streaming wörld — 世界!", []),
    "two_tools": (None, [("call_Paris01", "get_weather", '{"location": "Paris"}'), ("call_Tokyo02", "get_time", '{"tz": "Asia/Tokyo"}')]),
    "text_then_tool": ("Let me check the weather.", [("call_Rome03", "get_weather", '{"location": "Rome"}')]),
}


def split_events(data: bytes) -> list[bytes]:
    """An SSE transcript as one chunk per event, as an upstream writes them."""
    return [part + b"\n\n" for part in data.split(b"\n\n") if part]


def events(raw: bytes) -> list[ServerSentEvent]:
    return SSEDecoder().feed(raw)


def payloads(raw: bytes) -> list[Any]:
    """Each event's data, parsed (``[DONE]`` stays a string)."""
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events(raw)]


async def read_stream(router, path: str, body: dict[str, Any]) -> bytes:
    """A successful stream's raw bytes, checked against the rules of the endpoint's API."""
    response, raw = await router.post_stream(path, body)
    assert response.code == 200, raw
    assert response.headers["Content-Type"] == "text/event-stream"
    assert validate(raw, KIND[path]) == []
    return raw


async def log_entry(router) -> dict[str, Any]:
    """The only log entry, once the request has been logged."""
    (entry,) = await poll(router.log_entries, "the request's log entry")
    return entry


def pool_is_free(router) -> bool:
    """Every curl handle of the router's client is back in the pool, none in use or
    queued, and every provider's concurrency slot is given back."""
    http = router.runtime.http
    return (
        all(provider.in_flight == 0 for provider in router.runtime.providers.values())
        and len(http._free_list) == len(http._curls) == router.runtime.config.server.max_clients
        and {id(c) for c in http._free_list} == {id(c) for c in http._curls}
        and all(getattr(c, "info", None) is None for c in http._curls)
        and not http._requests
    )


def router_with(start_router, upstream, tmp_path, **provider_settings: Any):
    """A router whose two real-API providers get ``provider_settings``."""
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    for name in ("oai", "ant"):
        config["providers"][name].update(provider_settings)
    return start_router(config)


# --- 1. the official SDKs' stream helpers, on every path -----------------------------


def openai_tools() -> list[dict[str, Any]]:
    return [{"type": "function", "function": t} for t in TOOLS]


def anthropic_tools() -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in TOOLS]


@pytest.mark.gen_test
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helper", ["create", "stream"])
@pytest.mark.parametrize("model,kind", [("gpt-4o", "openai"), ("to-anthropic", "anthropic")], ids=["openai<-openai", "openai<-anthropic"])
async def test_openai_sdk_streams(router, upstream, model, kind, helper, scenario):
    text, calls = SCENARIOS[scenario]
    upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="client-key", max_retries=0)
    request = dict(model=model, messages=[{"role": "user", "content": "go"}], tools=openai_tools(),
                   stream_options={"include_usage": True})
    if helper == "create":
        content, tool_calls, finish, usage, roles = "", {}, None, None, []
        async for chunk in await client.chat.completions.create(stream=True, **request):
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                roles += [choice.delta.role] if choice.delta.role else []
                content += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or ():
                    entry = tool_calls.setdefault(call.index, {"id": call.id, "name": call.function.name, "arguments": ""})
                    entry["arguments"] += call.function.arguments or ""
        got_calls = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(tool_calls.items())]
        assert roles == ["assistant"]
    else:
        async with client.chat.completions.stream(**request) as stream:
            completion = await stream.get_final_completion()
        choice = completion.choices[0]
        content, finish, usage = choice.message.content or "", choice.finish_reason, completion.usage
        got_calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or ()]
    await client.close()
    assert content == (text or "")
    assert got_calls == [(i, n, json.loads(a)) for i, n, a in calls]
    assert finish == ("tool_calls" if calls else "stop")
    prompt, completion_tokens = USAGE[kind]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (prompt, completion_tokens, prompt + completion_tokens)
    assert upstream.last.body["stream"] is True
    if kind == "openai":
        assert upstream.last.body["stream_options"] == {"include_usage": True}


@pytest.mark.gen_test
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("model,kind", [("claude-x", "anthropic"), ("to-openai", "openai")], ids=["anthropic<-anthropic", "anthropic<-openai"])
async def test_anthropic_sdk_streams(router, upstream, model, kind, scenario):
    text, calls = SCENARIOS[scenario]
    upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="client-key", max_retries=0)
    async with client.messages.stream(model=model, max_tokens=100, tools=anthropic_tools(),
                                      messages=[{"role": "user", "content": "go"}]) as stream:
        deltas = [event.text async for event in stream if event.type == "text"]
        final = await stream.get_final_message()
    await client.close()
    expected: list[tuple[Any, ...]] = [("text", text)] if text else []
    expected += [("tool_use", i, n, json.loads(a)) for i, n, a in calls]
    assert [("text", b.text) if b.type == "text" else (b.type, b.id, b.name, b.input) for b in final.content] == expected
    assert "".join(deltas) == (text or "")
    if text:
        assert len(deltas) > 1  # streamed in pieces, not in one block
    assert final.stop_reason == ("tool_use" if calls else "end_turn")
    assert (final.usage.input_tokens, final.usage.output_tokens) == USAGE[kind]
    assert upstream.last.body["stream"] is True
    if kind == "openai":  # Anthropic streams always carry usage: the router asks an OpenAI upstream for it
        assert upstream.last.body["stream_options"] == {"include_usage": True}


# --- 2. a same-API relay is faithful, byte for byte -----------------------------------

UNKNOWN_EVENTS = b"".join([
    sse_event("message_start", {"type": "message_start", "message": {
        "id": "msg_future", "type": "message", "role": "assistant", "content": [], "model": "claude-next",
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}, "novel": [1]}}),
    sse_event("future_event", {"type": "future_event", "payload": {"x": 1}}),
    sse_event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
    sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "stuff": "?"}}),
    sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None, "stop_details": {"k": "v"}}, "usage": {"output_tokens": 2}}),
    sse_event("another_future_event", {"type": "another_future_event"}),
    sse_event("message_stop", {"type": "message_stop"}),
])

ANTHROPIC_TRANSCRIPTS = {
    **{path.stem: transcript("anthropic-sse", path.name) for path in sorted((FIXTURE_DIR / "anthropic-sse").glob("*.txt"))},
    "unknown_events": UNKNOWN_EVENTS,
}


@pytest.mark.gen_test
@pytest.mark.parametrize("chunking", ["per_event", "7_bytes"])
@pytest.mark.parametrize("name", ANTHROPIC_TRANSCRIPTS)
async def test_anthropic_relay_is_byte_identical(router, upstream, name, chunking):
    sent = ANTHROPIC_TRANSCRIPTS[name]
    chunks = split_events(sent) if chunking == "per_event" else [sent[i : i + 7] for i in range(0, len(sent), 7)]
    upstream.then(Reply(sse=chunks))
    raw = await read_stream(router, ANTHROPIC, message("claude-x", stream=True))
    assert raw == sent
    if name == "extra_fields_response":
        assert raw.count(b'"private_field"') == 4
    entry = await log_entry(router)
    assert entry["status"] == 200 and entry["error"] is None and entry["response"]["content"]


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["text.txt", "text_with_usage.txt", "parallel_tool_calls.txt", "reasoning_content.txt"])
async def test_openai_relay_is_byte_identical(router, upstream, name):
    sent = transcript("openai-sse", name)
    upstream.then(Reply(sse=split_events(sent)))
    raw = await read_stream(router, OPENAI, chat("gpt-4o", stream=True, stream_options={"include_usage": "usage" in sent.decode()}))
    assert raw == sent


@pytest.mark.gen_test
@pytest.mark.parametrize("name", sorted(ANTHROPIC_TRANSCRIPTS))
@pytest.mark.parametrize("include_usage", [True, False])
async def test_anthropic_transcripts_translate_to_valid_openai_streams(router, upstream, name, include_usage):
    upstream.then(Reply(sse=split_events(ANTHROPIC_TRANSCRIPTS[name])))
    body = chat("to-anthropic", stream=True, stream_options={"include_usage": include_usage})
    raw = await read_stream(router, OPENAI, body)
    assert (b'"choices":[]' in raw) is include_usage


@pytest.mark.gen_test
@pytest.mark.parametrize("name", ["text.txt", "text_with_usage.txt", "parallel_tool_calls.txt", "reasoning_content.txt"])
async def test_openai_transcripts_translate_to_valid_anthropic_streams(router, upstream, name):
    upstream.then(Reply(sse=split_events(transcript("openai-sse", name))))
    raw = await read_stream(router, ANTHROPIC, message("to-openai", stream=True))
    assert payloads(raw)[-1] == {"type": "message_stop"}


# --- 3. the shape of each API's stream ------------------------------------------------


OPENAI_SOURCES = [
    pytest.param("gpt-4o", "openai", id="relay"),
    pytest.param("to-anthropic", "anthropic", id="from-anthropic"),
    pytest.param("local-echo", "echo", id="from-echo"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("model,kind", OPENAI_SOURCES)
async def test_openai_stream_shape(router, upstream, model, kind, include_usage):
    text, calls = SCENARIOS["text_then_tool"]
    if kind == "echo":  # the echo provider calls a tool when asked to: '/tool NAME {args}'
        calls = calls[:1]
        prompt = f"/tool {calls[0][1]} {calls[0][2]}"
        text = None
    else:
        prompt = "go"
        upstream.then(Reply(sse=scripted_sse(kind, text, calls) if kind == "anthropic" else openai_sse(text, calls, usage=include_usage)))
    raw = await read_stream(router, OPENAI, chat(model, prompt, stream=True, tools=openai_tools(), stream_options={"include_usage": include_usage}))
    chunks = payloads(raw)
    assert chunks[-1] == "[DONE]" and "[DONE]" not in chunks[:-1]
    chunks = chunks[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    if include_usage:
        *chunks, usage_chunk = chunks
        assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    assert all(c["choices"] and c.get("usage") is None for c in chunks)
    *chunks, last = chunks
    assert last["choices"][0]["finish_reason"] == "tool_calls" and not last["choices"][0]["delta"].get("tool_calls")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    seen: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or ():
            if call["index"] not in seen:  # the first delta of a call: index, id, type and name
                assert call["index"] == len(seen)
                assert call["id"] and call["type"] == "function" and call["function"]["name"]
                seen[call["index"]] = call["function"].get("arguments", "")
            else:  # then argument fragments only
                assert set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
                seen[call["index"]] += call["function"]["arguments"]
    assert [json.loads(a) for a in seen.values()] == [json.loads(a) for _, _, a in calls]
    assert streamed_text(OPENAI, raw) == (text or "")


@pytest.mark.gen_test
@pytest.mark.parametrize("model,kind", [("claude-x", "anthropic"), ("to-openai", "openai"), ("local-echo", "echo")],
                         ids=["relay", "from-openai", "from-echo"])
async def test_anthropic_stream_shape(router, upstream, model, kind):
    text, calls = SCENARIOS["text_then_tool"]
    if kind == "echo":
        text = "echo: " + "a fairly long sentence to come back in several pieces"
        prompt = text[len("echo: "):]
        calls = []
    else:
        prompt = "go"
        upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
    raw = await read_stream(router, ANTHROPIC, message(model, prompt, stream=True, tools=anthropic_tools()))
    decoded = events(raw)
    assert all(e.event == json.loads(e.data)["type"] for e in decoded)  # every event named, as its data's type
    names = [e.event for e in decoded if e.event != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    blocks = [json.loads(e.data)["content_block"]["type"] for e in decoded if e.event == "content_block_start"]
    assert blocks == ["text"] + ["tool_use"] * len(calls)
    assert streamed_text(ANTHROPIC, raw) == text
    assert raw.startswith(b"event: message_start\ndata: ")


# --- 5. answers that exist whole: a plugin's, the echo provider's ----------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_short_circuit_plugin_streams_a_valid_answer(start_router, upstream, tmp_path, path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=[{"use": "tests.plugins_for_tests.ShortCircuit"}])
    router = start_router(config)
    response, raw = await router.post_stream(path, body_for(path, "any-model", stream=True))
    assert response.code == 200 and response.headers["x-tornrouter-provider"] == "plugin"
    assert validate(raw, KIND[path]) == []
    assert streamed_text(path, raw) == "short-circuited"
    assert upstream.requests == []
    entry = await log_entry(router)
    assert entry["stream"] is True and entry["status"] == 200 and entry["provider"] == "plugin"
    assert entry["response"]["content"] == [{"type": "text", "text": "short-circuited"}]


@pytest.mark.gen_test
async def test_raw_tool_arguments_of_a_whole_answer_stream_verbatim(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=[{"use": "tests.plugins_for_tests.CallsTool"}])
    router = start_router(config)
    response, raw = await router.post_stream(OPENAI, chat("any-model", stream=True))  # not read_stream: the validator wants JSON arguments
    assert response.code == 200, raw
    calls = [c for p in payloads(raw) if isinstance(p, dict) for c in p["choices"][0]["delta"].get("tool_calls") or ()]
    assert "".join(c["function"].get("arguments", "") for c in calls) == RAW_ARGUMENTS
    entry = await log_entry(router)
    assert entry["response"]["content"] == [{"type": "tool_call", "id": "call_1", "name": "get_weather", "raw_arguments": RAW_ARGUMENTS}]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_echo_provider_streams_in_pieces(router, path):
    said = "please say this back to me in a few separate pieces"
    raw = await read_stream(router, path, body_for(path, "local-echo", said, stream=True))
    assert streamed_text(path, raw) == f"echo: {said}"
    if path == OPENAI:
        deltas = [p for p in payloads(raw) if isinstance(p, dict) and p["choices"] and p["choices"][0]["delta"].get("content")]
    else:
        deltas = [p for p in payloads(raw) if p["type"] == "content_block_delta"]
    assert len(deltas) >= 3


# --- 6. failures: before the first byte an HTTP error, after it the API's error event ----


def upstream_error(kind: str, status: int, message: str) -> dict[str, Any]:
    if kind == "openai":
        return {"error": {"message": message, "type": "requests" if status == 429 else "server_error", "param": None, "code": None}}
    return {"type": "error", "error": {"type": "rate_limit_error" if status == 429 else "api_error", "message": message}}


def check_error_body(path: str, response: HTTPResponse, raw: bytes, status: int, text: str) -> None:
    assert response.code == status, raw
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    if path == OPENAI:
        assert set(body["error"]) >= {"message", "type", "param", "code"}
        assert text in body["error"]["message"]
    else:
        assert body["type"] == "error" and body["error"]["type"] and text in body["error"]["message"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
@pytest.mark.parametrize("status,expected", [(429, 429), (500, 502)])
async def test_upstream_status_before_the_stream_is_an_http_error(router, upstream, path, model, kind, status, expected):
    headers = {"Retry-After": "7"} if status == 429 else {}
    upstream.then(Reply(status=status, headers=headers, body=upstream_error(kind, status, "upstream says no")))
    response, raw = await router.post_stream(path, body_for(path, model, stream=True))
    check_error_body(path, response, raw, expected, "upstream says no")
    if status == 429:
        assert response.headers["Retry-After"] == "7"
    entry = await log_entry(router)
    assert entry["status"] == expected and "upstream says no" in entry["error"] and entry["stream"] is True


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_connection_refused_before_the_stream_is_502(start_router, upstream, tmp_path, path):
    router = start_router(base_config("http://127.0.0.1:9", str(tmp_path / "requests.jsonl")))
    response, raw = await router.post_stream(path, body_for(path, "to-anthropic" if path == OPENAI else "to-openai", stream=True))
    check_error_body(path, response, raw, 502, "provider '")
    entry = await log_entry(router)
    assert entry["status"] == 502 and entry["error"]
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model", [(ANTHROPIC, "claude-x"), (OPENAI, "to-anthropic")], ids=["anthropic<-anthropic", "openai<-anthropic"])
@pytest.mark.parametrize("error_type,expected", [("overloaded_error", 502), ("rate_limit_error", 429)])
async def test_error_event_first_is_an_http_error(router, upstream, path, model, error_type, expected):
    error = {"type": "error", "error": {"type": error_type, "message": "Overloaded, try later"}}
    upstream.then(Reply(sse=[sse_event("error", error)]))
    response, raw = await router.post_stream(path, body_for(path, model, stream=True))
    check_error_body(path, response, raw, expected, "Overloaded, try later")
    entry = await log_entry(router)
    assert entry["status"] == expected and "Overloaded" in entry["error"]


def mid_stream_failure(kind: str, failure: str) -> Reply:
    """A stream that begins well (message start, some text) and then fails."""
    full = scripted_sse(kind, "one two three four five six")
    begun = full[:5]  # the start and a few text pieces
    if failure == "dropped":
        return Reply(sse=begun, drop=True)
    if failure == "truncated":
        return Reply(sse=begun)
    if failure == "malformed":
        return Reply(sse=[*begun, b'data: {"not": "json"\n\n', *full[5:]])
    if failure == "out_of_order":  # the start, then in one chunk: text and an event the stream cannot have there
        if kind == "openai":  # tool call 0 continued after tool call 1 began
            calls = scripted_sse(kind, None, [("call_a", "get_time", '{"tz": "UTC"}'), ("call_b", "get_time", "{}")])
            return Reply(sse=[*begun[:2], b"".join([*begun[2:], calls[1], calls[5], calls[2], *full[5:]])])
        stray = {"type": "content_block_delta", "index": 7, "delta": {"type": "text_delta", "text": "?"}}
        return Reply(sse=[*begun[:3], b"".join([*begun[3:], sse_event("content_block_delta", stray), *full[5:]])])
    if kind == "openai":  # failure == "error_event": the API's own error, mid-stream
        return Reply(sse=[*begun, sse_data({"error": {"message": "server had an error", "type": "server_error", "param": None, "code": None}})])
    return Reply(sse=[*begun, sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "server had an error"}})])


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
@pytest.mark.parametrize("failure", ["dropped", "error_event", "truncated", "malformed", "out_of_order"])
async def test_failure_mid_stream_ends_with_the_apis_error_event(router, upstream, path, model, kind, failure):
    upstream.then(mid_stream_failure(kind, failure))
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    last = payloads(raw)[-1]
    if path == ANTHROPIC:
        assert events(raw)[-1].event == "error" and last["type"] == "error" and last["error"]["message"]
    else:
        assert set(last) == {"error"} and last["error"]["message"]
    assert streamed_text(path, raw).startswith("one ")  # what came before the failure was delivered
    entry = await log_entry(router)
    assert entry["error"] and entry["status"] >= 500 and entry["stream"] is True
    if failure in ("malformed", "out_of_order"):
        assert ("malformed" if kind == "openai" or failure == "malformed" else "broken stream") in entry["error"]
    if failure == "error_event":
        assert "server had an error" in entry["error"]
    assert entry["response"]["content"][0]["text"].startswith("one ")
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
@pytest.mark.parametrize("failure", ["status_500", "error_event_first", "no_content"])
async def test_failure_before_content_is_retried(start_router, upstream, tmp_path, path, model, kind, failure):
    """Nothing has reached the client before the first content: the dispatcher may try again."""
    router = router_with(start_router, upstream, tmp_path, retries=1, retry_backoff_s=0.01)
    if failure == "status_500":
        first = Reply(status=500, body=upstream_error(kind, 500, "try again"))
    elif failure == "error_event_first":
        first = Reply(sse=[sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "try again"}})]
                      if kind == "anthropic" else [sse_data(upstream_error("openai", 500, "try again"))])
    else:
        first = Reply(sse=scripted_sse(kind, "never sent")[:1], drop=True)  # the message's start, then the connection drops
    upstream.then(first, Reply(sse=scripted_sse(kind, "second time lucky")))
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    assert streamed_text(path, raw) == "second time lucky"
    assert len(upstream.requests) == 2
    entry = await log_entry(router)
    assert entry["status"] == 200 and entry["error"] is None
    assert [a["status"] for a in entry["attempts"]][1:] == [200] and entry["attempts"][0]["error"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_failure_after_content_is_not_retried(start_router, upstream, tmp_path, path, model, kind):
    router = router_with(start_router, upstream, tmp_path, retries=2, retry_backoff_s=0.01)
    upstream.then(mid_stream_failure(kind, "dropped"))
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    assert streamed_text(path, raw).startswith("one ")
    assert len(upstream.requests) == 1
    entry = await log_entry(router)
    assert entry["status"] == 502 and entry["error"] and len(entry["attempts"]) == 1


# --- 7. a client that goes away mid-stream -----------------------------------------------


async def read_then_hang_up(router, path: str, body: dict[str, Any], events_wanted: int) -> bytes:
    """Read a stream until ``events_wanted`` events have arrived, then close the connection."""
    stream = await router.send_raw(path, body)
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    received = b""
    while received.count(b"\n\n") < events_wanted:
        received += await stream.read_bytes(65536, partial=True)
    stream.close()
    return received


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_client_disconnect_stops_the_upstream(router, upstream, path, model, kind):
    upstream.then(Reply(sse=scripted_sse(kind, " ".join(f"w{i}" for i in range(200))), chunk_delay=0.1))
    received = await read_then_hang_up(router, path, body_for(path, model, stream=True), events_wanted=4)
    assert b"w0" in received
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    assert upstream.closed == [upstream.last]
    entry = await log_entry(router)
    assert entry["cancelled"] is True and entry["status"] == 499 and entry["stream"] is True
    assert entry["error"] is None
    assert entry["response"]["content"][0]["text"].startswith("w0 ")
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_client_disconnect_before_the_first_byte(router, upstream, path, model, kind):
    upstream.then(Reply(delay=30, sse=scripted_sse(kind, "too late")))
    stream = await router.send_raw(path, body_for(path, model, stream=True))
    await poll(lambda: upstream.requests, "the request to reach the upstream")
    stream.close()
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    entry = await log_entry(router)
    assert entry["cancelled"] is True and entry["status"] == 499 and entry["error"] is None
    assert entry["response"] is None and entry["ttft_ms"] is None
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
async def test_pooled_handles_forget_an_aborted_stream(start_router, upstream, tmp_path):
    """One curl handle, aborted mid-stream (the client went away), then reused for
    a plain request and a stream: the abort must not carry over to them."""
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    config["server"]["max_clients"] = 1
    router = start_router(config)
    upstream.then(Reply(sse=scripted_sse("anthropic", " ".join(f"w{i}" for i in range(200))), chunk_delay=0.1))
    await read_then_hang_up(router, ANTHROPIC, message("claude-x", stream=True), events_wanted=4)
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    await poll(lambda: pool_is_free(router), "the curl pool to be free")
    upstream.then(Reply(delay=1.2))  # long enough for libcurl to call a progress callback
    response = await router.post(ANTHROPIC, message("claude-x", stream=False))
    assert response.code == 200, response.body
    upstream.stream_chunk_delay = 0.1
    raw = await read_stream(router, OPENAI, chat("gpt-4o", stream=True))
    assert OPENAI_TEXT in streamed_text(OPENAI, raw)


# --- 8. timeouts: first byte (an HTTP error), idle (the error event) ----------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_idle_timeout_mid_stream(start_router, upstream, tmp_path, path, model, kind):
    router = router_with(start_router, upstream, tmp_path, idle_timeout_s=0.5)
    sse = scripted_sse(kind, "one two three four")
    upstream.then(Reply(sse=[b"".join(sse[:4]), *sse[4:]], chunk_delay=30))  # the start, then a stall
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    assert streamed_text(path, raw).startswith("one ")
    assert "timed out after 0.5 s between stream events" in payloads(raw)[-1]["error"]["message"]
    entry = await log_entry(router)
    assert entry["status"] == 504 and "timed out" in entry["error"] and entry["stream"] is True
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_first_byte_timeout_is_504(start_router, upstream, tmp_path, path, model, kind):
    router = router_with(start_router, upstream, tmp_path, first_byte_timeout_s=0.5)
    upstream.then(Reply(delay=30, sse=scripted_sse(kind, "too late")))
    response, raw = await router.post_stream(path, body_for(path, model, stream=True))
    check_error_body(path, response, raw, 504, "waiting for the first byte")
    entry = await log_entry(router)
    assert entry["status"] == 504 and "first byte" in entry["error"]
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


# --- 9. the request log and the late plugins see the assembled answer ---------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_log_entry_holds_the_assembled_response(router, upstream, path, model, kind):
    text, calls = SCENARIOS["text_then_tool"]
    upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
    response, raw = await router.post_stream(path, body_for(path, model, stream=True))
    assert response.code == 200 and validate(raw, KIND[path]) == []
    provider, sent_model = TARGETS[model]
    assert upstream.last.body["model"] == sent_model
    assert (response.headers["x-tornrouter-provider"], response.headers["x-tornrouter-model"]) == (provider, sent_model)
    entry = await log_entry(router)
    assert (entry["provider"], entry["requested_model"], entry["sent_model"]) == (provider, model, sent_model)
    assert entry["stream"] is True and entry["status"] == 200 and entry["error"] is None and entry["cancelled"] is False
    assert entry["ttft_ms"] is not None and 0 < entry["ttft_ms"] <= entry["duration_ms"]
    content = entry["response"]["content"]
    assert content[0] == {"type": "text", "text": text}
    assert [(c["id"], c["name"], c["input"]) for c in content[1:]] == [(i, n, json.loads(a)) for i, n, a in calls]
    assert entry["response"]["stop_reason"] == "tool_use"
    assert (entry["usage"]["input_tokens"], entry["usage"]["output_tokens"]) == USAGE[kind]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_post_response_plugin_changes_the_log_not_the_stream(start_router, upstream, tmp_path, path, model, kind):
    plugin = {"use": "tests.plugins_for_tests.Rewrite", "settings": {"text": "rewritten"}}
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=[plugin]))
    upstream.then(Reply(sse=scripted_sse(kind, "the original words")))
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    assert streamed_text(path, raw) == "the original words"
    entry = await log_entry(router)
    assert entry["response"]["content"] == [{"type": "text", "text": "rewritten"}]
    assert entry["plugins"] == ["rewrite"]


# --- 10. many streams at once ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_many_concurrent_streams(router, upstream):
    upstream.stream_chunk_delay = 0.01
    models = {OPENAI: ["gpt-4o", "to-anthropic", "local-echo"], ANTHROPIC: ["claude-x", "to-openai", "local-echo"]}
    requests = [(path, models[path][i % 3], f"request-{i}") for i, path in enumerate([OPENAI, ANTHROPIC] * 25)]
    raws = await asyncio.gather(*(read_stream(router, path, body_for(path, model, said, stream=True)) for path, model, said in requests))
    for (path, model, said), raw in zip(requests, raws):
        text = streamed_text(path, raw)
        assert text.endswith(" " + said)  # its own answer, not a neighbour's
    entries = await poll(lambda: len(e := router.log_entries()) >= len(requests) and e, "every request logged")
    assert len(entries) == len(requests) and len({e["id"] for e in entries}) == len(requests)
    assert all(e["status"] == 200 and e["stream"] is True and e["error"] is None for e in entries)
    assert sorted(e["messages"][0]["content"][0]["text"] for e in entries) == sorted(said for _, _, said in requests)
    await poll(lambda: pool_is_free(router), "the curl pool to be free")
    assert upstream.closed == []


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", PATHS)
async def test_a_whole_stream_in_one_read_with_bytes_after_its_end(router, upstream, path, model, kind):
    """However curl cuts the stream (here: all of it, and then some, in one
    chunk), the client gets it whole; what follows the terminal event is not
    the client's, and no error event comes after a finished stream."""
    trailing = sse_event("ping", {"type": "ping"}) if kind == "anthropic" else sse_data({"late": True})
    upstream.then(Reply(sse=[b"".join(scripted_sse(kind, "all at once")) + trailing]))
    raw = await read_stream(router, path, body_for(path, model, stream=True))
    assert streamed_text(path, raw) == "all at once"
    entry = await log_entry(router)
    assert entry["status"] == 200 and entry["error"] is None
