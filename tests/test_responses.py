"""``POST /v1/responses`` on the wire: the OpenAI Responses API served by
every provider kind (chat completions, Anthropic, echo, a Responses upstream),
the other APIs' clients served by a Responses upstream, through real loopback
servers and the official SDKs.  Streams: ``test_responses_streaming.py``."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.codec_fixtures import CodecFixtures
from tests.configs import base_config
from tests.fake_upstream import (
    ANTHROPIC_TEXT, OPENAI_TEXT, RESPONSES_TEXT, Reply, anthropic_message, nginx_error_page, openai_completion, responses_response,
)
from tests.wire import OPENAI, RESPONSES, response
from tornrouter.formats.responses.codec import ResponsesCodec

# model -> the provider the base config routes it to, the model it sends, and the canned answer's text
PATHS = {
    "resp-x": ("oresp", "resp-x", RESPONSES_TEXT),
    "gpt-4o": ("oai", "gpt-4o", OPENAI_TEXT),
    "to-anthropic": ("ant", "claude-haiku-4-5", ANTHROPIC_TEXT),
    "local-echo": ("echo", "local-echo", "echo: hi"),
}
FIXTURES = CodecFixtures("responses", ResponsesCodec())
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": False}


def sdk(router) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="client-key", max_retries=0)


# --- every provider kind behind the endpoint ---------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("model", PATHS)
async def test_sdk_create_on_every_path(router, upstream, model):
    provider, sent, text = PATHS[model]
    client = sdk(router)
    answer = await client.responses.create(model=model, input="hi", instructions="be brief", max_output_tokens=100)
    await client.close()
    assert answer.output_text == text
    assert answer.id.startswith("resp_") and answer.object == "response" and answer.status == "completed"
    assert answer.usage.total_tokens == answer.usage.input_tokens + answer.usage.output_tokens > 0
    assert answer.instructions == "be brief" and answer.max_output_tokens == 100
    if provider != "echo":
        assert upstream.last.body["model"] == sent
    (entry,) = router.log_entries()
    assert (entry["endpoint"], entry["provider"], entry["status"]) == (RESPONSES, provider, 200)
    assert entry["response"]["content"][0]["text"] == text


@pytest.mark.gen_test
async def test_each_upstream_gets_its_own_api(router, upstream):
    body = response("x", "what is 2+2?", instructions="answer in digits", max_output_tokens=50, temperature=0.5)
    for model, path in (("resp-x", "/v1/responses"), ("gpt-4o", "/v1/chat/completions"), ("to-anthropic", "/v1/messages")):
        assert (await router.post(RESPONSES, {**body, "model": model})).code == 200
        assert upstream.last.path == path
    sent = [r.body for r in upstream.requests]
    assert sent[0] == {**body, "model": "resp-x"}  # the same API: relayed as sent
    assert sent[1]["messages"] == [{"role": "system", "content": "answer in digits"}, {"role": "user", "content": "what is 2+2?"}]
    assert (sent[1]["max_completion_tokens"], sent[1]["temperature"]) == (50, 0.5)
    assert (sent[2]["system"], sent[2]["messages"], sent[2]["max_tokens"]) == (
        "answer in digits", [{"role": "user", "content": "what is 2+2?"}], 50)


@pytest.mark.gen_test
async def test_a_responses_relay_is_faithful_both_ways(router, upstream):
    body = FIXTURES.load("requests", "tools_cycle") | {"model": "resp-o4-mini", "future_field": {"x": 1}}
    answer = FIXTURES.load("responses", "reasoning") | {"future_response_field": [1, 2]}
    upstream.then(Reply(body=answer))
    got = await router.post(RESPONSES, body)
    assert got.code == 200
    assert upstream.last.path == "/v1/responses" and upstream.last.headers["Authorization"] == "Bearer sk-test-openai-SECRET"
    assert upstream.last.body == body
    assert json.loads(got.body) == answer
    assert "x-tornrouter-lossy" not in got.headers
    assert (got.headers["x-tornrouter-provider"], got.headers["x-tornrouter-model"]) == ("oresp", "resp-o4-mini")


# --- the other clients served by a Responses upstream ------------------------------------------


@pytest.mark.gen_test
async def test_chat_client_to_a_responses_upstream(router, upstream):
    client = sdk(router)
    completion = await client.chat.completions.create(
        model="to-responses", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_completion_tokens=64, response_format={"type": "json_object"}, store=False,
    )
    await client.close()
    assert completion.choices[0].message.content == RESPONSES_TEXT and completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.prompt_tokens_details.cached_tokens) == (12, 8, 2)
    sent = upstream.last
    assert sent.path == "/v1/responses"
    assert sent.body == {"model": "gpt-5-mini", "instructions": "be brief", "input": [{"role": "user", "content": "hi"}],
                         "max_output_tokens": 64, "store": False, "text": {"format": {"type": "json_object"}}}


@pytest.mark.gen_test
async def test_anthropic_client_to_a_responses_upstream(router, upstream):
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="client-key", max_retries=0)
    message = await client.messages.create(model="to-responses", max_tokens=64, system="be brief",
                                           messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert message.content[0].text == RESPONSES_TEXT and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (10, 2, 8)
    assert upstream.last.body == {"model": "gpt-5-mini", "instructions": "be brief", "input": [{"role": "user", "content": "hi"}],
                                  "max_output_tokens": 64, "store": False}


# --- tool calls, there and back ----------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("model,kind", [("to-anthropic", "anthropic"), ("gpt-4o", "openai"), ("resp-x", "responses")])
async def test_tool_round_trip(router, upstream, model, kind):
    first = {"anthropic": anthropic_message({}, "Let me look.") | {"content": [
                 {"type": "text", "text": "Let me look."},
                 {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}], "stop_reason": "tool_use"},
             "openai": openai_completion({}) | {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                 "role": "assistant", "content": "Let me look.", "tool_calls": [
                     {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}]},
             "responses": responses_response({"model": model}, "Let me look.", [("toolu_01", "get_weather", "{\"city\": \"Paris\"}")])}[kind]
    upstream.then(Reply(body=first))
    client = sdk(router)
    answer = await client.responses.create(model=model, input="weather in Paris?", tools=[WEATHER], tool_choice="required")
    assert answer.output_text == "Let me look."
    (call,) = [item for item in answer.output if item.type == "function_call"]
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("toolu_01", "get_weather", {"city": "Paris"})
    assert call.id.startswith("fc_") and call.status == "completed"
    if kind == "anthropic":
        assert upstream.last.body["tool_choice"] == {"type": "any"}
        assert upstream.last.body["tools"] == [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER["parameters"]}]

    follow_up = [{"role": "user", "content": "weather in Paris?"}, *[i.to_dict() for i in answer.output],
                 {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}]
    second = await client.responses.create(model=model, input=follow_up, tools=[WEATHER])
    await client.close()
    assert second.output_text
    sent = upstream.last.body
    if kind == "anthropic":
        assert [t["role"] for t in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"] == [{"type": "text", "text": "Let me look."},
                                                  {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]
        assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny, 21C"}]
    elif kind == "openai":
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
        assert sent["messages"][1]["tool_calls"][0]["id"] == "toolu_01"
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny, 21C"}
    else:
        assert sent["input"] == follow_up  # relayed as the client sent it


# --- hosted tools: mapped, dropped, refused, passed through ---------------------------------------


@pytest.mark.gen_test
async def test_web_search_is_anthropics_server_tool_there(router, upstream):
    got = await router.post(RESPONSES, response("to-anthropic", "news?", tools=[{"type": "web_search"}, WEATHER]))
    assert got.code == 200
    assert [t.get("type") for t in upstream.last.body["tools"]] == ["web_search_20250305", None]
    assert upstream.last.body["tools"][0] == {"type": "web_search_20250305", "name": "web_search"}
    assert "tools.web_search" not in got.headers["x-tornrouter-lossy"]  # (the usage's service_tier is)


@pytest.mark.gen_test
async def test_hosted_tools_are_dropped_and_named_where_nothing_runs_them(router, upstream):
    tools = [{"type": "web_search", "user_location": {"type": "approximate", "country": "US"}}, {"type": "code_interpreter", "container": {"type": "auto"}}, WEATHER]
    got = await router.post(RESPONSES, response("gpt-4o", "news?", tools=tools))
    assert got.code == 200 and json.loads(got.body)["output"][0]["content"][0]["text"] == OPENAI_TEXT
    assert [t["function"]["name"] for t in upstream.last.body["tools"]] == ["get_weather"]
    assert got.headers["x-tornrouter-lossy"].startswith("tools.web_search, tools.code_interpreter, ")  # then the answer's
    (entry,) = router.log_entries()
    assert entry["lossy"][:2] == ["tools.web_search", "tools.code_interpreter"]
    got = await router.post(RESPONSES, response("to-anthropic", "news?", tools=tools))
    assert got.headers["x-tornrouter-lossy"].startswith("tools.web_search.user_location, tools.code_interpreter")
    got = await router.post(RESPONSES, response("resp-x", "news?", tools=tools))
    assert upstream.last.body["tools"] == tools and "x-tornrouter-lossy" not in got.headers


@pytest.mark.gen_test
async def test_hosted_tools_refuse_answers_400_naming_the_tool(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "r.jsonl"))
    for name in ("oai", "ant"):
        config["providers"][name]["hosted_tools"] = "refuse"
    router = start_router(config)
    client = sdk(router)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-4o", input="news?", tools=[WEATHER, {"type": "web_search_preview"}])
    assert caught.value.body["param"] == "tools.1"
    assert "'web_search_preview'" in caught.value.message and "hosted_tools: refuse" in caught.value.message
    assert upstream.requests == []
    # Anthropic runs a web search of its own: nothing to refuse; a file search it cannot run.
    assert (await client.responses.create(model="to-anthropic", input="news?", tools=[{"type": "web_search"}])).output_text == ANTHROPIC_TEXT
    with pytest.raises(openai.BadRequestError, match="file_search"):
        await client.responses.create(model="to-anthropic", input="q", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    await client.close()
    assert len(upstream.requests) == 1
    assert [e["status"] for e in router.log_entries()] == [400, 200, 400]


# --- what the client sent wrong, and what the upstream did --------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("case", FIXTURES.invalid, ids=[c["name"] for c in FIXTURES.invalid])
async def test_bad_input_is_400_naming_the_field(router, upstream, case):
    got = await router.post(RESPONSES, case["body"])
    assert got.code == 400
    error = json.loads(got.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"].startswith(case["param"]) and error["message"].startswith(case["param"])
    assert error["type"] == "router_error"  # the router's own refusal, as on the other endpoints
    assert upstream.requests == []
    (entry,) = router.log_entries()
    assert (entry["status"], entry["endpoint"]) == (400, RESPONSES)


@pytest.mark.gen_test
@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b""])
async def test_a_body_that_is_not_an_object_is_400(router, upstream, raw):
    got = await router.post(RESPONSES, raw)
    assert got.code == 400 and json.loads(got.body)["error"]["message"]
    assert upstream.requests == []


@pytest.mark.gen_test
async def test_previous_response_id_is_followed_by_the_routers_store(router, upstream):
    """Every kind of upstream gets the whole conversation, none an id it did not
    issue (``test_responses_conversations.py`` has the rest)."""
    client = sdk(router)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="resp-x", input="and then?", previous_response_id="resp_abc")
    assert caught.value.body["param"] == "previous_response_id" and caught.value.code == "previous_response_not_found"
    assert upstream.requests == []
    first = await client.responses.create(model="to-anthropic", input="hi")
    answer = await client.responses.create(model="resp-x", input="and then?", previous_response_id=first.id)
    await client.close()
    sent = upstream.last.body
    assert "previous_response_id" not in sent and answer.previous_response_id == first.id
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]


@pytest.mark.gen_test
async def test_upstream_errors_reach_the_sdk_in_its_shape(router, upstream):
    upstream.then(Reply(status=429, headers={"Retry-After": "7"}, body={"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    client = sdk(router)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model="to-anthropic", input="hi")
    assert caught.value.response.headers["retry-after"] == "7" and "slow down" in caught.value.message
    assert caught.value.body["type"] == "rate_limit_error"
    upstream.then(Reply(status=400, body={"error": {"message": "Unsupported parameter: 'temperature'", "type": "invalid_request_error",
                                                    "param": "temperature", "code": "unsupported_parameter"}}))
    with pytest.raises(openai.BadRequestError, match="Unsupported parameter"):
        await client.responses.create(model="resp-x", input="hi", temperature=0.2)
    page = Reply(status=502, body=nginx_error_page(), headers={"Content-Type": "text/html"})
    upstream.then(page)
    with pytest.raises(openai.InternalServerError) as failed:
        await client.responses.create(model="resp-x", input="hi")
    await client.close()
    assert failed.value.body["message"] == "provider 'oresp': upstream returned 502 with a text/html page: \"502 Bad Gateway\""


@pytest.mark.gen_test
@pytest.mark.parametrize("reply", [Reply(body={"object": "response", "output": "nope"}), Reply(body=b"<html>oops</html>"),
                                   Reply(body={"object": "response", "status": "failed", "output": [], "error": {"code": "server_error", "message": "boom"}})],
                         ids=["not a response", "not JSON", "failed"])
async def test_a_responses_upstreams_broken_answer_is_502(router, upstream, reply):
    upstream.then(reply)
    got = await router.post(OPENAI, {"model": "to-responses", "messages": [{"role": "user", "content": "hi"}]})
    assert got.code == 502 and json.loads(got.body)["error"]["message"].startswith("provider 'oresp'")


# --- the lossy header and the answer's shape -------------------------------------------------


@pytest.mark.gen_test
async def test_reasoning_with_encrypted_content_is_named_lossy_to_another_api(router, upstream):
    body = FIXTURES.load("requests", "tools_cycle") | {"model": "to-anthropic"}
    got = await router.post(RESPONSES, body)
    assert got.code == 200
    lossy = got.headers["x-tornrouter-lossy"].split(", ")
    assert {"thinking", "thinking.encrypted_content", "include", "reasoning.summary"} <= set(lossy)
    assert not any(b["type"] == "thinking" for m in upstream.last.body["messages"] for b in m["content"] if isinstance(b, dict))


@pytest.mark.gen_test
async def test_a_whole_answer_validates_as_the_sdks_response(router, upstream):
    upstream.then(Reply(body=anthropic_message({"model": "claude-haiku-4-5"}) | {
        "content": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"}, {"type": "text", "text": "Once upon"}],
        "stop_reason": "max_tokens"}))
    got = await router.post(RESPONSES, response("to-anthropic", "a story", max_output_tokens=5, metadata={"k": "v"}, store=False))
    body = json.loads(got.body)
    parsed = openai.types.responses.Response.model_validate(body)
    assert (parsed.status, parsed.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    assert [item.type for item in parsed.output] == ["reasoning", "message"] and parsed.output[1].status == "incomplete"
    assert parsed.output[0].summary[0].text == "Let me think."
    assert (parsed.metadata, parsed.store, parsed.max_output_tokens) == ({"k": "v"}, False, 5)
    assert got.headers["x-tornrouter-lossy"] == "metadata, thinking.signature, usage.service_tier"


@pytest.mark.gen_test
async def test_a_plugins_answer_to_a_responses_client(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), plugins=[{"use": "tests.plugins_for_tests.ShortCircuit"}]))
    client = sdk(router)
    answer = await client.responses.create(model="anything", input="hi")
    await client.close()
    assert answer.output_text == "short-circuited" and answer.id.startswith("resp_")
    assert upstream.requests == []
