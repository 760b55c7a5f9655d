"""The proxy on the wire: both client APIs against both provider kinds, through
real loopback servers, with the official SDKs, and every way a request can fail."""

from __future__ import annotations

import asyncio
import json

import anthropic
import openai
import pytest

from tests.configs import base_config
from tests.fake_upstream import ANTHROPIC_TEXT, OPENAI_TEXT, Reply, nginx_error_page
from tests.wire import ANTHROPIC, OPENAI, chat, message

SECRETS = ("sk-test-openai-SECRET", "sk-ant-test-SECRET")


# --- same format --------------------------------------------------------------


@pytest.mark.gen_test
async def test_openai_to_openai_relays_faithfully(router, upstream):
    body = chat("gpt-4o", seed=7, logprobs=False, future_field={"x": 1})
    body["messages"].insert(0, {"role": "developer", "content": "be brief"})
    response = await router.post(OPENAI, body)
    assert response.code == 200
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test-openai-SECRET"
    assert sent.body == body
    answer = json.loads(response.body)
    assert answer["choices"][0]["message"]["content"] == OPENAI_TEXT
    assert answer["system_fingerprint"] == "fp_fake" and answer["usage"]["prompt_tokens"] == 12
    assert response.headers["x-tornrouter-provider"] == "oai"
    assert response.headers["x-tornrouter-model"] == "gpt-4o"
    assert "x-tornrouter-lossy" not in response.headers


@pytest.mark.gen_test
async def test_anthropic_to_anthropic_relays_faithfully(router, upstream):
    body = message("claude-sonnet-5-5", system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}], top_k=5)
    response = await router.post(ANTHROPIC, body)
    assert response.code == 200
    sent = upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["X-Api-Key"] == "sk-ant-test-SECRET"
    assert sent.headers["Anthropic-Version"] == "2023-06-01"
    assert sent.body == body
    answer = json.loads(response.body)
    assert answer["content"] == [{"type": "text", "text": ANTHROPIC_TEXT}]
    assert answer["usage"]["cache_read_input_tokens"] == 2


# --- cross format ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_openai_client_to_anthropic_upstream(router, upstream):
    body = chat("to-anthropic", "what is 2+2?", stop=["END"], temperature=0.5, logprobs=True)
    body["messages"].insert(0, {"role": "system", "content": "answer in digits"})
    response = await router.post(OPENAI, body)
    assert response.code == 200
    sent = upstream.last.body
    assert upstream.last.path == "/v1/messages"
    assert sent["model"] == "claude-haiku-4-5"
    assert sent["system"] in ("answer in digits", [{"type": "text", "text": "answer in digits"}])
    assert sent["max_tokens"] == 4096
    assert sent["stop_sequences"] == ["END"]
    assert sent["messages"][0]["role"] == "user"
    answer = json.loads(response.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == ANTHROPIC_TEXT
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 12 and answer["usage"]["completion_tokens"] == 8
    assert "logprobs" in response.headers["x-tornrouter-lossy"]
    (entry,) = router.log_entries()
    assert "logprobs" in entry["lossy"]


@pytest.mark.gen_test
async def test_anthropic_client_to_openai_upstream(router, upstream):
    body = message("to-openai", "hi", system="be kind", stop_sequences=["\n\n"])
    response = await router.post(ANTHROPIC, body)
    assert response.code == 200
    sent = upstream.last.body
    assert upstream.last.path == "/v1/chat/completions"
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0] == {"role": "system", "content": "be kind"}
    assert sent["messages"][1]["role"] == "user"
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 100
    answer = json.loads(response.body)
    assert answer["type"] == "message" and answer["role"] == "assistant"
    assert answer["content"] == [{"type": "text", "text": OPENAI_TEXT}]
    assert answer["usage"]["input_tokens"] == 10 and answer["usage"]["cache_read_input_tokens"] == 2
    # OpenAI's "stop" cannot say whether a stop sequence matched
    assert "stop_sequence" in response.headers["x-tornrouter-lossy"]


@pytest.mark.gen_test
async def test_tool_round_trip_across_formats(router, upstream):
    upstream.then(Reply(body={
        "id": "msg_t", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 12},
    }))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    body = chat("to-anthropic", "weather in Paris?", tools=tools, tool_choice="required")
    answer = json.loads((await router.post(OPENAI, body)).body)
    sent = upstream.last.body
    assert sent["tools"] == [{"name": "get_weather", "description": "weather", "input_schema": tools[0]["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any"}
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    follow_up = chat("to-anthropic", tools=tools)
    follow_up["messages"] = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "rainy"},
    ]
    assert (await router.post(OPENAI, follow_up)).code == 200
    turns = upstream.last.body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[1]["content"]] == ["tool_use", "tool_use"]
    assert turns[1]["content"][0]["input"] == {"city": "Paris"}
    assert [(b["type"], b["tool_use_id"]) for b in turns[2]["content"]] == [("tool_result", "call_a"), ("tool_result", "call_b")]


# --- the official SDKs ----------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("model,text", [("gpt-4o", OPENAI_TEXT), ("to-anthropic", ANTHROPIC_TEXT), ("local-echo", "echo: hi")])
async def test_openai_sdk(router, model, text):
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="client-key", max_retries=0)
    completion = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == text
    assert completion.usage.total_tokens > 0
    await client.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("model,text", [("claude-sonnet-5-5", ANTHROPIC_TEXT), ("to-openai", OPENAI_TEXT), ("local-echo", "echo: hi")])
async def test_anthropic_sdk(router, model, text):
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="client-key", max_retries=0)
    reply = await client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert reply.content[0].text == text
    assert reply.usage.output_tokens > 0
    await client.close()


@pytest.mark.gen_test
async def test_sdks_raise_their_own_errors(router, upstream):
    upstream.then(Reply(status=429, headers={"Retry-After": "7"}, body={"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}))
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert "slow down" in caught.value.message
    await client.close()
    aclient = anthropic.AsyncAnthropic(base_url=router.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as bad:
        await aclient.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "robot", "content": "hi"}])
    assert "messages.0.role" in bad.value.message
    await aclient.close()


@pytest.mark.gen_test
async def test_sdks_see_a_clean_error_for_an_upstreams_html_page(router, upstream):
    page = Reply(status=502, body=nginx_error_page(comment=" ".join(SECRETS)), headers={"Content-Type": "text/html"})
    upstream.then(page, page)
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert caught.value.status_code == 502
    assert caught.value.body == {
        "message": "provider 'oai': upstream returned 502 with a text/html page: \"502 Bad Gateway\"",
        "type": "server_error", "param": None, "code": "upstream_error",
    }
    aclient = anthropic.AsyncAnthropic(base_url=router.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as acaught:
        await aclient.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    await aclient.close()
    assert acaught.value.status_code == 502
    assert acaught.value.body["error"] == {
        "type": "api_error", "message": "provider 'ant': upstream returned 502 with a text/html page: \"502 Bad Gateway\"",
    }
    for error in (caught.value, acaught.value):
        assert "<" not in error.message and not any(secret in error.message for secret in SECRETS)


# --- upstream failures ----------------------------------------------------------------


UPSTREAM_ERRORS = [  # status, body, what an OpenAI client gets
    (400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}}, 400),
    (401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}, 401),
    (403, {"type": "error", "error": {"type": "permission_error", "message": "no"}}, 403),
    (404, {"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}, 404),
    (413, {"type": "error", "error": {"type": "request_too_large", "message": "too big"}}, 413),
    (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}, 429),
    (500, {"type": "error", "error": {"type": "api_error", "message": "internal"}}, 502),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 502),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("status,body,cross_status", UPSTREAM_ERRORS)
async def test_upstream_errors_reach_a_client_of_the_same_api_unmodified(router, upstream, status, body, cross_status):
    headers = {"Retry-After": "3"} if status == 429 else {}
    upstream.then(Reply(status=status, body=body, headers=headers), Reply(status=status, body=body, headers=headers))
    same = await router.post(ANTHROPIC, message("claude-x"))
    assert same.code == status  # 529 stays 529: an agent's retry logic reads it
    assert json.loads(same.body) == body
    assert same.headers["x-tornrouter-provider"] == "ant"
    cross = await router.post(OPENAI, chat("to-anthropic"))
    assert cross.code == cross_status
    assert body["error"]["message"] in json.loads(cross.body)["error"]["message"]
    if status == 429:
        assert same.headers["Retry-After"] == "3" and cross.headers["Retry-After"] == "3"
    entries = router.log_entries()
    assert [e["status"] for e in entries] == [status, cross_status]
    assert entries[0]["error"] == f"provider 'ant': upstream returned {status}: {body['error']['message']}"


@pytest.mark.gen_test
async def test_connection_refused_is_502(start_router, upstream, tmp_path):
    config = base_config("http://127.0.0.1:9", str(tmp_path / "r.jsonl"))
    router = start_router(config)
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 502
    assert "provider 'oai'" in json.loads(response.body)["error"]["message"]


@pytest.mark.gen_test
async def test_timeout_is_504(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "r.jsonl"))
    config["providers"]["ant"]["timeout_s"] = 0.3
    router = start_router(config)
    upstream.then(Reply(delay=2))
    response = await router.post(ANTHROPIC, message("claude-x"))
    assert response.code == 504
    assert json.loads(response.body)["error"]["type"] == "router_error"


@pytest.mark.gen_test
@pytest.mark.parametrize("reply", [Reply(body=b"<html>oops</html>"), Reply(body={"unexpected": True}), Reply(drop=True)])
async def test_broken_upstream_answers_are_502(router, upstream, reply):
    upstream.then(reply)
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 502
    assert json.loads(response.body)["error"]["message"].startswith("provider 'oai'")
    (entry,) = router.log_entries()
    assert entry["status"] == 502 and entry["error"]


# --- bad input ------------------------------------------------------------------------


BAD_OPENAI = [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
    (json.dumps({"model": "gpt-4o"}).encode(), "messages"),
    (json.dumps({"model": "gpt-4o", "messages": "hi"}).encode(), "messages"),
    (json.dumps({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages.0.role"),
    (json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(), "temperature"),
]
BAD_ANTHROPIC = [
    (b"", None),
    (json.dumps({"model": "claude", "messages": [{"role": "user", "content": "x"}]}).encode(), "max_tokens"),
    (json.dumps({"model": "claude", "max_tokens": "many", "messages": []}).encode(), "max_tokens"),
    (json.dumps({"model": "claude", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}).encode(), "messages.0.role"),
    (json.dumps({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]}).encode(), "messages.0.content.0"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("raw,param", BAD_OPENAI)
async def test_bad_openai_input_is_400_naming_the_field(router, upstream, raw, param):
    response = await router.post(OPENAI, raw)
    assert response.code == 400
    error = json.loads(response.body)["error"]
    if param:
        assert error["param"] == param or error["param"].startswith(param)
        assert param in error["message"]
    assert upstream.requests == []
    (entry,) = router.log_entries()
    assert entry["status"] == 400


@pytest.mark.gen_test
@pytest.mark.parametrize("raw,param", BAD_ANTHROPIC)
async def test_bad_anthropic_input_is_400_naming_the_field(router, upstream, raw, param):
    response = await router.post(ANTHROPIC, raw)
    assert response.code == 400
    error = json.loads(response.body)
    assert error["type"] == "error"
    if param:
        assert param in error["error"]["message"]
    assert upstream.requests == []


@pytest.mark.gen_test
async def test_oversized_body_is_413_in_native_shape(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "r.jsonl"))
    config["server"]["max_body_bytes"] = 4096
    router = start_router(config)
    big = chat("gpt-4o", "x" * 10000)
    response = await router.post(OPENAI, big)
    assert response.code == 413
    assert "4096" in json.loads(response.body)["error"]["message"]
    response = await router.post(ANTHROPIC, message("claude-x", "x" * 10000))
    assert response.code == 413 and json.loads(response.body)["type"] == "error"
    assert upstream.requests == []


@pytest.mark.gen_test
async def test_n_above_one_to_anthropic_is_refused_clearly(router, upstream):
    response = await router.post(OPENAI, chat("to-anthropic", n=2))
    assert response.code == 400
    assert json.loads(response.body)["error"]["param"] == "n"
    assert upstream.requests == []


# --- log, models, health, secrets ----------------------------------------------------------


@pytest.mark.gen_test
async def test_every_request_logged_once_without_secrets(router, upstream):
    upstream.then(Reply(status=401, body={"error": {"message": "Incorrect API key provided: sk-test-openai-SECRET", "type": "invalid_request_error"}}))
    results = await asyncio.gather(
        router.post(OPENAI, chat("gpt-4o")),
        router.post(OPENAI, chat("gpt-4o")),
        router.post(ANTHROPIC, message("claude-x")),
        router.post(OPENAI, b"{"),
        router.post(ANTHROPIC, message("to-openai")),
    )
    entries = router.log_entries()
    assert len(entries) == 5
    assert sorted(e["status"] for e in entries) == sorted(r.code for r in results)
    assert len({e["id"] for e in entries}) == 5
    raw = open(router.log_path).read() + "".join(r.body.decode() for r in results)
    for secret in SECRETS:
        assert secret not in raw
    entry = next(e for e in entries if e["endpoint"] == "/v1/messages" and e["status"] == 200)
    for field in ("ts_ms", "provider", "requested_model", "sent_model", "duration_ms", "tags", "plugins",
                  "system", "messages", "response", "error", "id", "endpoint", "stream", "status", "usage", "routing"):
        assert field in entry
    assert entry["usage"]["output_tokens"] > 0


@pytest.mark.gen_test
async def test_models_and_health(router):
    models = json.loads((await router.get("/v1/models")).body)
    assert models["object"] == "list"
    ids = {m["id"] for m in models["data"]}
    assert {"to-openai", "to-anthropic", "gpt-4o-mini", "claude-haiku-4-5"} <= ids
    assert all(m["object"] == "model" for m in models["data"])
    assert (await router.get("/health")).body == b"ok"
    client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="k")
    listed = [m.id async for m in client.models.list()]
    assert "to-openai" in listed
    await client.close()


@pytest.mark.gen_test
async def test_every_listed_model_is_served_under_its_name(start_router, upstream, tmp_path):
    # No default: a name no route matches is served only if the config lists it.
    router = start_router({
        "providers": {
            "oai": {"kind": "openai", "base_url": upstream.url + "/v1", "models": ["gpt-listed"]},
            "ant": {"kind": "anthropic", "base_url": upstream.url},
        },
        "router": {"routes": [
            {"model": "*", "tags": ["vip"], "to": "oai/acc-vip-model"},   # reached only under a tag
            {"model": "opus-alias", "tags": ["vip"], "to": "ant/claude-opus-5-5"},  # a condition, not a name
            {"model": "haiku", "to": "ant/claude-haiku-5-5"},
        ]},
        "log": {"requests": str(tmp_path / "r.jsonl")},
    })
    listed = {m["id"]: m["owned_by"] for m in json.loads((await router.get("/v1/models")).body)["data"]}
    assert listed == {"acc-vip-model": "oai", "claude-opus-5-5": "ant", "haiku": "ant",
                      "claude-haiku-5-5": "ant", "gpt-listed": "oai"}
    for model, provider in listed.items():
        response = await router.post(OPENAI, chat(model))
        assert response.code == 200, (model, response.body)
        assert response.headers["x-tornrouter-provider"] == provider
        assert upstream.last.body["model"] == ("claude-haiku-5-5" if model == "haiku" else model)
    assert [e["routing"]["matched"] for e in router.log_entries()] == ["listed", "listed", "route", "listed", "listed"]
    response = await router.post(OPENAI, chat("opus-alias"))
    assert response.code == 400 and "no provider configured for model 'opus-alias'" in response.body.decode()


@pytest.mark.gen_test
async def test_provider_settings_reach_the_wire(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "r.jsonl"))
    config["providers"]["oai"]["headers"] = {"OpenAI-Organization": "org-42", "X-Team": "search"}
    config["providers"]["ant"].update(
        {"headers": {"anthropic-beta": "context-1m"}, "anthropic_version": "2025-01-01", "default_max_tokens": 333}
    )
    router = start_router(config)
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True}}
    await router.post(OPENAI, chat("gpt-5.4", response_format=schema))
    sent = upstream.last
    assert sent.headers["Openai-Organization"] == "org-42" and sent.headers["X-Team"] == "search"
    assert sent.body["response_format"] == schema  # passed through to an OpenAI-kind upstream
    await router.post(OPENAI, chat("to-anthropic"))
    sent = upstream.last
    assert sent.headers["Anthropic-Beta"] == "context-1m"
    assert sent.headers["Anthropic-Version"] == "2025-01-01"
    assert sent.body["max_tokens"] == 333
