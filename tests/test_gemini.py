"""``kind: gemini`` end to end: every client API, whole and streamed, against a
fake Gemini that refuses what the real one refuses (``tests/fake_gemini.py``).

Each test sends what a client of one API sends and asserts what that client
reads back, and what reached Gemini: the text, tool calls and their results,
images, the content filter, errors in the client's own shape, and thought
signatures that come back to Gemini on the next turn whatever the client's API.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.answers import native_error
from tests.fake_gemini import GEMINI_KEY, GEMINI_TEXT, FakeGemini, gemini_error, gemini_part_call, gemini_response, gemini_sse
from tests.fake_upstream import Reply, sse_data
from tests.upstream_faults import logged_entry, send
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES, body_for
from tornrouter.accumulate import Accumulator
from tornrouter.canonical import ChatResponse, Thinking, ToolCall
from tornrouter.formats import codec_for
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate

PATHS = [OPENAI, ANTHROPIC, RESPONSES]
MODEL = "gemini-2.5-flash"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n fake pixel").decode()


@pytest.fixture
def gemini(io_loop):
    fake = FakeGemini().start()
    yield fake
    io_loop.run_sync(fake.stop)


def config(tmp_path, fake: FakeGemini, **options: Any) -> dict[str, Any]:
    return {
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {"gem": {"kind": "gemini", "base_url": fake.base_url, "api_key": GEMINI_KEY, **options}},
        "router": {"default": f"gem/{MODEL}"},
    }


def streaming(path: str, stream: bool) -> dict[str, Any]:
    """The fields that ask for a stream (with its usage, for a chat-completions client)."""
    if not stream:
        return {}
    return {"stream": True, "stream_options": {"include_usage": True}} if path == OPENAI else {"stream": True}


def tools_for(path: str) -> list[dict[str, Any]]:
    if path == ANTHROPIC:
        return [{"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER}]
    if path == RESPONSES:
        return [{"type": "function", "name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}]
    return [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}}]


def seen(path: str, body: dict[str, Any], raw: bytes) -> tuple[ChatResponse, dict[str, Any]]:
    """What the client read: the answer (canonical) and its whole wire body (a
    stream validated, then read with its API's stream decoder and written whole)."""
    codec = codec_for(KIND[path])
    request = codec.parse_request(json.dumps(body).encode())
    if not body.get("stream"):
        wire = json.loads(raw)
        return codec.decode_response(wire), wire
    assert validate(raw, KIND[path]) == []
    decoder, accumulator = codec.stream_decoder(), Accumulator(KIND[path])
    for event in SSEDecoder().feed(raw):
        if event.data != "[DONE]":
            for item in decoder.feed_sse(event):
                accumulator.add(item)
    for item in decoder.close():
        accumulator.add(item)
    assert accumulator.finished
    response = accumulator.response()
    return response, codec.encode_response(response, request)[0]


def follow_up(path: str, body: dict[str, Any], answer: dict[str, Any], result: str) -> dict[str, Any]:
    """The client's next request: the answer's tool calls and their result, as
    each API's client sends them back (the whole assistant turn, thinking included)."""
    body = dict(body)
    if path == OPENAI:
        message = answer["choices"][0]["message"]
        calls = [{"id": c["id"], "type": "function", "function": c["function"]} for c in message["tool_calls"]]
        body["messages"] = [*body["messages"], {"role": "assistant", "content": message.get("content"), "tool_calls": calls},
                            *({"role": "tool", "tool_call_id": c["id"], "content": result} for c in calls)]
    elif path == ANTHROPIC:
        calls = [b for b in answer["content"] if b["type"] == "tool_use"]
        results = [{"type": "tool_result", "tool_use_id": c["id"], "content": result} for c in calls]
        body["messages"] = [*body["messages"], {"role": "assistant", "content": answer["content"]},
                            {"role": "user", "content": results}]
    else:
        items = answer["output"]
        calls = [i for i in items if i["type"] == "function_call"]
        body["input"] = [{"role": "user", "content": body["input"]}, *items,
                         *({"type": "function_call_output", "call_id": c["call_id"], "output": result} for c in calls)]
    return body


# --- text ------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_text_answer_reaches_every_client(start_router, gemini, tmp_path, path, stream):
    router = start_router(config(tmp_path, gemini))
    body = body_for(path, "any-model", "hi there", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, _ = seen(path, body, raw)
    assert answer.text() == f"{GEMINI_TEXT} You said: hi there"
    assert answer.stop_reason == "end_turn"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (12, 8)
    method = "streamGenerateContent" if stream else "generateContent"
    assert gemini.last.path == f"/v1beta/models/{MODEL}:{method}"
    assert gemini.last.headers["X-Goog-Api-Key"] == GEMINI_KEY
    assert gemini.last.body["contents"] == [{"role": "user", "parts": [{"text": "hi there"}]}]
    entry = await logged_entry(router, response)
    assert entry["provider"] == "gem" and entry["status"] == 200
    assert "SECRET" not in json.dumps(entry) and "SECRET" not in raw.decode()


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_settings_and_system_reach_gemini(start_router, gemini, tmp_path, path):
    router = start_router(config(tmp_path, gemini))
    if path == OPENAI:
        body = body_for(path, "m", "hi", max_tokens=50, temperature=0.3, top_p=0.9, stop=["END"],
                        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    elif path == ANTHROPIC:
        body = body_for(path, "m", "hi", max_tokens=50, temperature=0.3, top_p=0.9, stop_sequences=["END"], system="Be brief.")
    else:
        body = body_for(path, "m", "hi", max_output_tokens=50, temperature=0.3, top_p=0.9, instructions="Be brief.")

    response = await router.post(path, body)

    assert response.code == 200, response.body
    sent = gemini.last.body
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    expected = {"maxOutputTokens": 50, "temperature": 0.3, "topP": 0.9}
    if path != RESPONSES:
        expected["stopSequences"] = ["END"]
    assert sent["generationConfig"] == expected


# --- tools and thought signatures ---------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_tool_cycle_brings_the_thought_signature_back(start_router, gemini, tmp_path, path, stream):
    """Gemini signs its function call; the client runs the tool and sends the
    result with the turn it got; Gemini gets the signature back on the call
    (it refuses the turn otherwise) and the result named after the function."""
    router = start_router(config(tmp_path, gemini))
    call = gemini_part_call("get_weather", {"city": "Paris"}, signature="sig-paris-1")
    if stream:
        gemini.then(Reply(sse=gemini_sse("Let me check.", [call])), Reply(sse=gemini_sse("It is 18C in Paris.")))
    else:
        gemini.then(Reply(body=gemini_response("Let me check.", [call])), Reply(body=gemini_response("It is 18C in Paris.")))
    body = body_for(path, "any-model", "weather in Paris?", tools=tools_for(path), **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, wire = seen(path, body, raw)
    (tool_call,) = [b for b in answer.content if isinstance(b, ToolCall)]
    assert (tool_call.name, tool_call.input) == ("get_weather", {"city": "Paris"})
    assert answer.stop_reason == "tool_use"
    assert gemini.last.body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city", "parametersJsonSchema": WEATHER}]}]
    if path == ANTHROPIC:  # the signature travels in the client's thinking block
        assert [b.signature for b in answer.content if isinstance(b, Thinking)] == ["gemini:sig-paris-1"]

    second, raw2 = await send(router, path, follow_up(path, body, wire, "18C and sunny"))

    assert second.code == 200, raw2
    assert seen(path, body, raw2)[0].text() == "It is 18C in Paris."
    contents = gemini.last.body["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"text": "Let me check."}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-paris-1"}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"output": "18C and sunny"}}}]}


@pytest.mark.gen_test
async def test_a_tool_turn_without_its_signature_gets_geminis_refusal(start_router, gemini, tmp_path):
    """A call the router never saw (another instance answered it): Gemini's 400,
    in the client's shape, says what is missing."""
    router = start_router(config(tmp_path, gemini))
    body = body_for(OPENAI, "m", "weather?", tools=tools_for(OPENAI))
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_unknown", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "20C"},
    ]

    response = await router.post(OPENAI, body)

    assert response.code == 400
    assert "missing a thought_signature" in native_error(OPENAI, response)
    assert json.loads(response.body)["error"]["type"] == "invalid_request_error"


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_tool_choice_maps_to_function_calling_config(start_router, gemini, tmp_path, path):
    router = start_router(config(tmp_path, gemini))
    choice = {OPENAI: {"type": "function", "function": {"name": "get_weather"}},
              ANTHROPIC: {"type": "tool", "name": "get_weather"},
              RESPONSES: {"type": "function", "name": "get_weather"}}[path]
    response = await router.post(path, body_for(path, "m", "hi", tools=tools_for(path), tool_choice=choice))

    assert response.code == 200, response.body
    assert gemini.last.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


# --- images, the content filter, errors ------------------------------------------------------


def image_body(path: str) -> dict[str, Any]:
    if path == OPENAI:
        content = [{"type": "text", "text": "what is this?"},
                   {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                   {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
        return {"model": "m", "messages": [{"role": "user", "content": content}]}
    if path == ANTHROPIC:
        content = [{"type": "text", "text": "what is this?"},
                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                   {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]
        return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": content}]}
    content = [{"type": "input_text", "text": "what is this?"},
               {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
               {"type": "input_image", "image_url": "https://example.com/cat.jpg"}]
    return {"model": "m", "input": [{"role": "user", "content": content}]}


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_images_become_inline_data_and_file_data(start_router, gemini, tmp_path, path):
    router = start_router(config(tmp_path, gemini))

    response = await router.post(path, image_body(path))

    assert response.code == 200, response.body
    assert gemini.last.body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}},
    ]


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_safety_block_is_the_clients_content_filter(start_router, gemini, tmp_path, path, stream):
    router = start_router(config(tmp_path, gemini))
    gemini.then(Reply(sse=gemini_sse("I can", finish="SAFETY")) if stream else Reply(body=gemini_response("I can", finish="SAFETY")))
    body = body_for(path, "m", "something bad", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, wire = seen(path, body, raw)
    assert answer.text() == "I can"
    if path == OPENAI:
        assert wire["choices"][0]["finish_reason"] == "content_filter"
    elif path == ANTHROPIC:
        assert wire["stop_reason"] == "refusal"
    else:
        assert wire["status"] == "incomplete" and wire["incomplete_details"] == {"reason": "content_filter"}


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_geminis_errors_reach_the_client_in_its_own_shape(start_router, gemini, tmp_path, path, stream):
    router = start_router(config(tmp_path, gemini))
    gemini.then(Reply(status=429, body=gemini_error(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED"),
                      headers={"Retry-After": "3"}))
    body = body_for(path, "m", "hi", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 429
    response._body = raw
    assert native_error(path, response) == (
        "provider 'gem': upstream returned 429: Resource has been exhausted (e.g. check quota).")
    assert response.headers["Retry-After"] == "3"
    error = json.loads(raw)["error"]
    assert error["type"] == "rate_limit_error"  # named by the status: RESOURCE_EXHAUSTED is no type of the client's API


@pytest.mark.gen_test
async def test_a_wrong_key_is_refused_and_never_shown(start_router, gemini, tmp_path):
    cfg = config(tmp_path, gemini)
    cfg["providers"]["gem"]["api_key"] = "AIza-wrong-SECRET"
    router = start_router(cfg)

    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"))

    assert response.code == 400
    assert "API key not valid" in native_error(ANTHROPIC, response)
    entry = await logged_entry(router, response)
    assert "SECRET" not in response.body.decode() and "SECRET" not in json.dumps(entry)


# --- what a client asks that Gemini has a field for, and what it lacks ------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_json_output_and_thinking_reach_generation_config(start_router, gemini, tmp_path, path):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    router = start_router(config(tmp_path, gemini))
    if path == OPENAI:
        body = body_for(path, "m", "hi", response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
                        reasoning_effort="low", seed=7)
        expected = {"responseMimeType": "application/json", "responseJsonSchema": schema, "seed": 7,
                    "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}
    elif path == ANTHROPIC:
        body = body_for(path, "m", "hi", max_tokens=4000, top_k=20, thinking={"type": "enabled", "budget_tokens": 1024})
        expected = {"maxOutputTokens": 4000, "topK": 20, "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    else:
        body = {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "a", "schema": schema}},
                "reasoning": {"effort": "low"}}
        expected = {"responseMimeType": "application/json", "responseJsonSchema": schema,
                    "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}}

    response = await router.post(path, body)

    assert response.code == 200, response.body
    assert gemini.last.body["generationConfig"] == expected


@pytest.mark.gen_test
async def test_what_gemini_cannot_carry_is_reported_lossy(start_router, gemini, tmp_path):
    router = start_router(config(tmp_path, gemini))
    body = body_for(OPENAI, "m", "hi", logprobs=True, user="u-1", parallel_tool_calls=False, tools=tools_for(OPENAI))

    response = await router.post(OPENAI, body)

    assert response.code == 200, response.body
    lossy = response.headers["x-tornrouter-lossy"].split(",")
    assert {"logprobs", "user", "parallel_tool_calls"} <= {name.strip() for name in lossy}
    entry = await logged_entry(router, response)
    assert {"logprobs", "user", "parallel_tool_calls"} <= set(entry["lossy"])


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_thoughts_reach_an_anthropic_client_as_thinking(start_router, gemini, tmp_path, stream):
    router = start_router(config(tmp_path, gemini))
    thought = {"text": "Paris is in France.", "thought": True}
    if stream:
        first = {"candidates": [{"content": {"parts": [thought], "role": "model"}, "index": 0}], "modelVersion": MODEL}
        gemini.then(Reply(sse=[sse_data(first), *gemini_sse("The capital is Paris.")]))
    else:
        gemini.then(Reply(body=gemini_response("The capital is Paris.", thought="Paris is in France.")))
    body = body_for(ANTHROPIC, "m", "capital of France?", thinking={"type": "enabled", "budget_tokens": 1024},
                    max_tokens=2000, **streaming(ANTHROPIC, stream))

    response, raw = await send(router, ANTHROPIC, body)

    assert response.code == 200, raw
    answer, wire = seen(ANTHROPIC, body, raw)
    assert [b["type"] for b in wire["content"]] == ["thinking", "text"]
    assert wire["content"][0]["thinking"] == "Paris is in France."
    assert answer.text() == "The capital is Paris."
