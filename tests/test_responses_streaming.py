"""Streams of ``POST /v1/responses``, and Responses upstreams' streams, end to
end: the official SDKs' stream helpers on every path, byte-identical relays,
the exact event grammar (every raw stream here passes ``validate_stream``),
and failures: before the commit point another attempt, after it
``response.failed``; a client that leaves stops the upstream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.answers import streamed_text
from tests.codec_fixtures import FIXTURE_DIR, transcript
from tests.configs import base_config
from tests.fake_upstream import Reply, responses_sse, scripted_sse, sse_event
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES, body_for
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate

ABORT_DEADLINE = 5.0  # libcurl stops an abandoned transfer at its next progress call, about a second later
TOOLS = [{"type": "function", "name": "get_weather", "description": "weather", "strict": False,
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
         {"type": "function", "name": "get_time", "description": "time", "strict": False,
          "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}]
SCENARIOS = {  # name -> (text, [(call id, name, arguments)])
    "text": ("Hello there, streaming wörld — 世界!", []),
    "two_tools": (None, [("call_Paris01", "get_weather", '{"location": "Paris"}'), ("call_Tokyo02", "get_time", '{"tz": "Asia/Tokyo"}')]),
    "text_then_tool": ("Let me check the weather.", [("call_Rome03", "get_weather", '{"location": "Rome"}')]),
}
# model -> the upstream kind the base config routes it to (the fake's stream for it)
MODELS = {"resp-x": "responses", "gpt-4o": "openai", "to-anthropic": "anthropic"}
USAGE = {"openai": (12, 8), "anthropic": (10, 8), "responses": (12, 8)}  # (input incl. cached, output) of the scripted streams


def split_events(data: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in data.split(b"\n\n") if part]


def payloads(raw: bytes) -> list[Any]:
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in SSEDecoder().feed(raw)]


async def read_stream(router, path: str, body: dict[str, Any]) -> bytes:
    """A successful stream's raw bytes, checked against the rules of the endpoint's API."""
    response, raw = await router.post_stream(path, body)
    assert response.code == 200, raw
    assert response.headers["Content-Type"] == "text/event-stream"
    assert validate(raw, KIND[path]) == []
    return raw


async def log_entry(router) -> dict[str, Any]:
    (entry,) = await poll(router.log_entries, "the request's log entry")
    return entry


def pool_is_free(router) -> bool:
    http = router.runtime.http
    return all(p.in_flight == 0 for p in router.runtime.providers.values()) and len(http._free_list) == len(http._curls)


# --- 1. the official SDKs' stream helpers, on every path ----------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("model", MODELS)
async def test_sdk_stream_on_every_path(router, upstream, model, scenario):
    kind = MODELS[model]
    text, calls = SCENARIOS[scenario]
    upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="client-key", max_retries=0)
    async with client.responses.stream(model=model, input="go", tools=TOOLS) as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    await client.close()
    assert final.output_text == (text or "") == "".join(deltas)
    if text:
        assert len(deltas) > 1  # streamed in pieces
    got = [(i.call_id, i.name, json.loads(i.arguments)) for i in final.output if i.type == "function_call"]
    assert got == [(i, n, json.loads(a)) for i, n, a in calls]
    assert final.id.startswith("resp_") and final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens) == USAGE[kind]
    assert upstream.last.body["stream"] is True
    entry = await log_entry(router)
    assert (entry["endpoint"], entry["stream"], entry["status"], entry["error"]) == (RESPONSES, True, 200, None)
    assert entry["ttft_ms"] is not None and entry["response"]["stop_reason"] == ("tool_use" if calls else "end_turn")


@pytest.mark.gen_test
@pytest.mark.parametrize("model", [*MODELS, "local-echo"])
async def test_every_path_streams_the_exact_grammar(router, upstream, model):
    kind = MODELS.get(model)
    text, calls = SCENARIOS["text_then_tool"]
    if kind is not None:
        upstream.then(Reply(sse=scripted_sse(kind, text, calls)))
        prompt = "go"
    else:  # the echo provider calls a tool when asked to
        prompt, text = f"/tool {calls[0][1]} {calls[0][2]}", None
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, model, prompt, stream=True, tools=TOOLS))
    events = SSEDecoder().feed(raw)
    data = [e.json() for e in events]
    assert all(e.event == d["type"] for e, d in zip(events, data))
    assert [d["sequence_number"] for d in data] == list(range(data[0]["sequence_number"], data[0]["sequence_number"] + len(data)))
    assert [e.event for e in events][:2] == ["response.created", "response.in_progress"] and events[-1].event == "response.completed"
    names = [e.event for e in events]
    assert names.count("response.output_item.added") == names.count("response.output_item.done") == (1 if text else 0) + len(calls)
    assert streamed_text(RESPONSES, raw) == (text or "")


# --- 2. the other clients' streams from a Responses upstream ------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_chat_sdk_streams_from_a_responses_upstream(router, upstream, scenario):
    text, calls = SCENARIOS[scenario]
    upstream.then(Reply(sse=responses_sse(text, calls)))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k", max_retries=0)
    tools = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in TOOLS]
    async with client.chat.completions.stream(model="to-responses", messages=[{"role": "user", "content": "go"}], tools=tools,
                                              stream_options={"include_usage": True}) as stream:
        completion = await stream.get_final_completion()
    await client.close()
    choice = completion.choices[0]
    assert (choice.message.content or "") == (text or "")
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or ()] == [
        (i, n, json.loads(a)) for i, n, a in calls]
    assert choice.finish_reason == ("tool_calls" if calls else "stop")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 8)
    assert upstream.last.path == "/v1/responses" and upstream.last.body["stream"] is True
    assert upstream.last.body["tools"][0] == {**TOOLS[0]}


@pytest.mark.gen_test
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_anthropic_sdk_streams_from_a_responses_upstream(router, upstream, scenario):
    text, calls = SCENARIOS[scenario]
    upstream.then(Reply(sse=responses_sse(text, calls, reasoning="Thinking it over." if scenario == "text" else None)))
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="k", max_retries=0)
    tools = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in TOOLS]
    async with client.messages.stream(model="to-responses", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "go"}]) as stream:
        final = await stream.get_final_message()
    await client.close()
    blocks = [("thinking", b.thinking) if b.type == "thinking" else ("text", b.text) if b.type == "text" else (b.type, b.id, b.name, b.input)
              for b in final.content]
    expected: list[tuple[Any, ...]] = [("thinking", "Thinking it over.")] if scenario == "text" else []
    expected += [("text", text)] if text else []
    expected += [("tool_use", i, n, json.loads(a)) for i, n, a in calls]
    assert blocks == expected
    assert final.stop_reason == ("tool_use" if calls else "end_turn")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 8)


# --- 3. relays and translations of recorded transcripts -----------------------------------------

TRANSCRIPTS = sorted(p.name for p in (FIXTURE_DIR / "responses-sse").glob("*.txt"))


@pytest.mark.gen_test
@pytest.mark.parametrize("chunking", ["per_event", "7_bytes"])
@pytest.mark.parametrize("name", TRANSCRIPTS)
async def test_a_responses_relay_is_byte_identical(router, upstream, name, chunking):
    sent = transcript("responses-sse", name)
    chunks = split_events(sent) if chunking == "per_event" else [sent[i: i + 7] for i in range(0, len(sent), 7)]
    upstream.then(Reply(sse=chunks))
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, "resp-x", stream=True))
    assert raw == sent
    entry = await log_entry(router)
    assert entry["status"] == 200 and entry["error"] is None and entry["response"]["content"]


@pytest.mark.gen_test
@pytest.mark.parametrize("name", TRANSCRIPTS)
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_responses_transcripts_translate_to_the_other_apis(router, upstream, name, path):
    upstream.then(Reply(sse=split_events(transcript("responses-sse", name))))
    raw = await read_stream(router, path, body_for(path, "to-responses", stream=True, **({"stream_options": {"include_usage": True}} if path == OPENAI else {})))
    text = "".join(part.get("text", "") for item in SSEDecoder().feed(transcript("responses-sse", name))[-1].json()["response"]["output"]
                   if item["type"] == "message" for part in item["content"])
    assert streamed_text(path, raw) == text


OTHER = [(kind, p.name) for kind in ("anthropic-sse", "openai-sse") for p in sorted((FIXTURE_DIR / kind).glob("*.txt"))]


@pytest.mark.gen_test
@pytest.mark.parametrize(("kind", "name"), OTHER, ids=[f"{k}/{n}" for k, n in OTHER])
async def test_other_transcripts_translate_to_responses_streams(router, upstream, kind, name):
    upstream.then(Reply(sse=split_events(transcript(kind, name))))
    model = "to-anthropic" if kind == "anthropic-sse" else "gpt-4o"
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, model, stream=True))
    assert payloads(raw)[-1]["type"] in ("response.completed", "response.incomplete")


# --- 4. reasoning that must come back ------------------------------------------------------------


@pytest.mark.gen_test
async def test_encrypted_reasoning_round_trips_through_a_stream(router, upstream):
    upstream.then(Reply(sse=responses_sse("Paris.", reasoning="Capital of France.", encrypted="gAAAAABencrypted==")))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k", max_retries=0)
    async with client.responses.stream(model="resp-x", input="capital of France?", include=["reasoning.encrypted_content"], store=False) as stream:
        final = await stream.get_final_response()
    reasoning = final.output[0]
    assert (reasoning.type, reasoning.encrypted_content, reasoning.summary[0].text) == ("reasoning", "gAAAAABencrypted==", "Capital of France.")
    follow_up = [{"role": "user", "content": "capital of France?"}, *[i.to_dict() for i in final.output], {"role": "user", "content": "and Spain?"}]
    await client.responses.create(model="resp-x", input=follow_up, store=False)
    await client.close()
    assert upstream.last.body["input"] == follow_up
    assert upstream.last.body["input"][1]["encrypted_content"] == "gAAAAABencrypted=="
    entry = router.log_entries()[0]
    assert entry["response"]["content"][0] == {"type": "thinking", "thinking": "Capital of France.",
                                                "extra": {"id": "rs_fake0001", "encrypted_content": "gAAAAABencrypted=="}}


# --- 5. failures ---------------------------------------------------------------------------------


def mid_stream_failure(kind: str, failure: str) -> Reply:
    full = scripted_sse(kind, "one two three four five six")
    begun = full[:6] if kind == "responses" else full[:5]  # the start and a few text pieces
    if failure == "dropped":
        return Reply(sse=begun, drop=True)
    if failure == "truncated":
        return Reply(sse=begun)
    if failure == "malformed":
        return Reply(sse=[*begun, b'event: response.output_text.delta\ndata: {"not": json\n\n' if kind == "responses" else b'data: {"not": "json"\n\n'])
    if kind == "responses":
        failed = {"response": {"id": "resp_fake0001", "object": "response", "status": "failed", "output": [],
                               "error": {"code": "server_error", "message": "server had an error"}}}
        return Reply(sse=[*begun, sse_event("response.failed", {"type": "response.failed", **failed, "sequence_number": 6})])
    if kind == "openai":
        return Reply(sse=[*begun, b'data: {"error": {"message": "server had an error", "type": "server_error"}}\n\n'])
    return Reply(sse=[*begun, sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "server had an error"}})])


FAILING_PATHS = [
    pytest.param(RESPONSES, "resp-x", "responses", id="responses<-responses"),
    pytest.param(RESPONSES, "to-anthropic", "anthropic", id="responses<-anthropic"),
    pytest.param(RESPONSES, "gpt-4o", "openai", id="responses<-openai"),
    pytest.param(OPENAI, "to-responses", "responses", id="openai<-responses"),
    pytest.param(ANTHROPIC, "to-responses", "responses", id="anthropic<-responses"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", FAILING_PATHS)
@pytest.mark.parametrize("failure", ["dropped", "error_event", "truncated", "malformed"])
async def test_failure_mid_stream_ends_with_the_apis_error_event(router, upstream, path, model, kind, failure):
    upstream.then(mid_stream_failure(kind, failure))
    raw = await read_stream(router, path, body_for(path, model, stream=True))  # valid: sequence numbers go on
    last = payloads(raw)[-1]
    if path == RESPONSES:
        assert last["type"] == "response.failed" and last["response"]["status"] == "failed"
        assert last["response"]["error"]["message"] and last["response"]["id"] == payloads(raw)[0]["response"]["id"]
    elif path == ANTHROPIC:
        assert last["type"] == "error"
    else:
        assert set(last) == {"error"}
    assert streamed_text(path, raw).startswith("one ")
    entry = await log_entry(router)
    assert entry["error"] and entry["status"] >= 500 and entry["stream"] is True
    if failure == "error_event":
        assert "server had an error" in entry["error"]
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


@pytest.mark.gen_test
async def test_the_sdk_raises_for_a_failed_stream(router, upstream):
    upstream.then(mid_stream_failure("anthropic", "error_event"))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(RuntimeError, match="response.completed"):
        async with client.responses.stream(model="to-anthropic", input="go") as stream:
            types = [event.type async for event in stream]
            await stream.get_final_response()
    await client.close()
    assert types[-1] == "response.failed"


@pytest.mark.gen_test
@pytest.mark.parametrize("failure", ["status_500", "failed_first", "no_content"])
@pytest.mark.parametrize("path", [RESPONSES, OPENAI])
async def test_a_responses_upstreams_failure_before_content_is_retried(start_router, upstream, tmp_path, failure, path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    config["providers"]["oresp"].update(retries=1, retry_backoff_s=0.01)
    router = start_router(config)
    if failure == "status_500":
        first = Reply(status=500, body={"error": {"message": "try again", "type": "server_error", "param": None, "code": None}})
    elif failure == "failed_first":
        first = Reply(sse=[*responses_sse("x")[:1], sse_event("response.failed", {"type": "response.failed", "sequence_number": 1, "response": {
            "id": "resp_fake0001", "object": "response", "status": "failed", "error": {"code": "server_error", "message": "try again"}}})])
    else:
        first = Reply(sse=responses_sse("never sent")[:2], drop=True)
    upstream.then(first, Reply(sse=responses_sse("second time lucky")))
    raw = await read_stream(router, path, body_for(path, "resp-x" if path == RESPONSES else "to-responses", stream=True))
    assert streamed_text(path, raw) == "second time lucky"
    assert len(upstream.requests) == 2
    entry = await log_entry(router)
    assert entry["status"] == 200 and [a["status"] for a in entry["attempts"]][1:] == [200] and entry["attempts"][0]["error"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model,kind", FAILING_PATHS[:3] + FAILING_PATHS[3:4])
async def test_client_disconnect_stops_the_upstream(router, upstream, path, model, kind):
    upstream.then(Reply(sse=scripted_sse(kind, " ".join(f"w{i}" for i in range(200))), chunk_delay=0.1))
    stream = await router.send_raw(path, body_for(path, model, stream=True))
    head = await stream.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    received = b""
    while received.count(b"\n\n") < 6:
        received += await stream.read_bytes(65536, partial=True)
    stream.close()
    assert b"w0" in received
    await poll(lambda: upstream.closed, "the upstream to see its connection closed", timeout=ABORT_DEADLINE)
    entry = await log_entry(router)
    assert entry["cancelled"] is True and entry["status"] == 499 and entry["error"] is None
    await poll(lambda: pool_is_free(router), "the curl pool to be free")


# --- 6. answers that exist whole -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_plugins_answer_streams_as_a_responses_stream(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), plugins=[{"use": "tests.plugins_for_tests.ShortCircuit"}]))
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, "any-model", stream=True))
    assert streamed_text(RESPONSES, raw) == "short-circuited"
    assert upstream.requests == []


@pytest.mark.gen_test
async def test_echo_streams_in_pieces(router):
    said = "please say this back to me in a few separate pieces"
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, "local-echo", said, stream=True))
    assert streamed_text(RESPONSES, raw) == f"echo: {said}"
    assert sum(1 for p in payloads(raw) if p["type"] == "response.output_text.delta") >= 3


# --- 7. fallback and continuation for a Responses client ----------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_failing_responses_upstream_falls_back_to_another_api(start_router, fakes, tmp_path, stream):
    from tests.configs import every_model_to, provider

    primary, backup = fakes(), fakes()
    primary.then(Reply(status=503, body={"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}))
    backup.then(Reply(sse=scripted_sse("anthropic", "from the backup")) if stream else Reply())
    router = start_router(every_model_to(tmp_path, {"primary": provider("openai-responses", primary.url),
                                                    "backup": provider("anthropic", backup.url)}, ["primary/model-a", "backup/model-b"]))
    body = body_for(RESPONSES, "any", stream=stream)
    if stream:
        raw = await read_stream(router, RESPONSES, body)
        assert streamed_text(RESPONSES, raw) == "from the backup"
    else:
        got = await router.post(RESPONSES, body)
        assert got.code == 200 and got.headers["x-tornrouter-provider"] == "backup"
    assert primary.last.path == "/v1/responses" and backup.last.path == "/v1/messages"
    entry = await log_entry(router)
    assert [(a["provider"], a["status"]) for a in entry["attempts"]] == [("primary", 503), ("backup", 200)]


@pytest.mark.gen_test
async def test_a_responses_stream_is_continued_on_another_target(start_router, fakes, tmp_path):
    from tests.configs import every_model_to, provider

    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=scripted_sse("anthropic", "one two three four five six")[:6], drop=True))
    backup.then(Reply(sse=scripted_sse("anthropic", " four five six.", model="model-b")))
    router = start_router(every_model_to(tmp_path, {"primary": provider("anthropic", primary.url), "backup": provider("anthropic", backup.url)},
                                         ["primary/model-a", "backup/model-b"], continue_on_failure=True))
    raw = await read_stream(router, RESPONSES, body_for(RESPONSES, "any", "count", stream=True))
    assert streamed_text(RESPONSES, raw) == "one two three four five six."
    events = [json.loads(e.data) for e in SSEDecoder().feed(raw)]
    assert [e["type"] for e in events].count("response.created") == 1 and events[-1]["type"] == "response.completed"
    assert backup.last.body["messages"][-1]["role"] == "assistant"
    entry = await log_entry(router)
    assert entry["continued"]["to"] == "backup/model-b" and entry["status"] == 200
