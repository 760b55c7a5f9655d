"""``POST /v1/messages/count_tokens``: routed as a Messages request, answered by
an Anthropic-kind target's upstream unchanged or estimated by the router,
cheap (no late plugins, no bill, a rate limit of its own, no circuit breaker
verdict), and able to take the bursts the IDE extensions send."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from tests.access_support import TEAM_A, bearer, error_of
from tests.configs import base_config
from tests.fake_upstream import Reply
from tests.upstream_faults import error_body, health
from tests.wire import ANTHROPIC, message

COUNT = "/v1/messages/count_tokens"
BETAS = "claude-code-20250219,token-counting-2024-11-01"


def counting(model: str, text: str = "hello", **extra):
    """A count_tokens body, as Claude Code sends one: no max_tokens."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def counts(upstream) -> list:
    return [r for r in upstream.requests if r.path == COUNT]


@pytest.mark.gen_test
async def test_an_anthropic_target_counts_and_its_answer_comes_back_unchanged(router, upstream):
    body = counting("to-anthropic", "how many tokens is this?", system="be brief",
                    tools=[{"name": "Bash", "description": "runs", "input_schema": {"type": "object"}}])
    upstream.then(Reply(body={"input_tokens": 2417, "context_management": {"original_input_tokens": 2417}}))
    response = await router.post(COUNT, body, headers={"anthropic-beta": BETAS, "anthropic-version": "2023-06-01"})

    assert response.code == 200
    assert json.loads(response.body) == {"input_tokens": 2417, "context_management": {"original_input_tokens": 2417}}
    assert "x-tornrouter-estimate" not in response.headers
    assert response.headers["x-tornrouter-provider"] == "ant"
    assert response.headers["x-tornrouter-model"] == "claude-haiku-4-5"
    (sent,) = counts(upstream)
    assert sent.body == {**body, "model": "claude-haiku-4-5"}  # routed like a message; no max_tokens added
    assert sent.headers["Anthropic-Beta"] == BETAS and sent.headers["X-Api-Key"] == "sk-ant-test-SECRET"
    (entry,) = router.log_entries()
    assert entry["endpoint"] == COUNT and entry["status"] == 200
    assert entry["token_count"] == {"input_tokens": 2417, "counted": "upstream"}
    assert entry["usage"] is None and entry["cost_usd"] is None and entry["response"] is None
    assert entry["provider"] == "ant" and entry["sent_model"] == "claude-haiku-4-5"
    assert [a["status"] for a in entry["attempts"]] == [200]


@pytest.mark.gen_test
@pytest.mark.parametrize("model,provider", [("to-openai", "oai"), ("local-model", "echo")])
async def test_other_targets_get_the_routers_estimate(router, upstream, model, provider):
    text = "x" * 400
    response = await router.post(COUNT, counting(model, text))
    assert response.code == 200
    assert json.loads(response.body) == {"input_tokens": 100}  # 400 characters, about 4 to a token
    assert response.headers["x-tornrouter-estimate"] == "characters/4"
    assert response.headers["x-tornrouter-provider"] == provider
    assert upstream.requests == []
    (entry,) = router.log_entries()
    assert entry["token_count"] == {"input_tokens": 100, "counted": "estimated"} and entry["attempts"] == []


@pytest.mark.gen_test
@pytest.mark.parametrize("status", [404, 405, 501])
async def test_an_upstream_without_the_endpoint_gets_the_estimate(router, upstream, status):
    upstream.then(Reply(status=status, body=error_body("anthropic", "Not Found", "not_found_error")))
    response = await router.post(COUNT, counting("claude-sonnet-5-5", "y" * 40))
    assert response.code == 200
    assert json.loads(response.body) == {"input_tokens": 10}
    assert response.headers["x-tornrouter-estimate"] == "characters/4"
    (entry,) = router.log_entries()
    assert [(a["provider"], a["status"]) for a in entry["attempts"]] == [("ant", status)]
    assert entry["status"] == 200 and entry["error"] is None


@pytest.mark.gen_test
async def test_counting_is_routed_like_a_message(start_router, fakes, tmp_path):
    long, short = fakes(), fakes()
    router = start_router({
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {"long": {"kind": "anthropic", "base_url": long.url},
                      "short": {"kind": "anthropic", "base_url": short.url}},
        "classifiers": [{"use": "long_context", "threshold_tokens": 100}],
        "router": {"default": "short/small", "routes": [{"model": "*", "tags": ["long_context"], "to": "long/large"}]},
    })
    assert (await router.post(COUNT, counting("claude-sonnet-5-5", "a" * 1000))).code == 200
    assert (await router.post(COUNT, counting("claude-sonnet-5-5", "a"))).code == 200
    assert (await router.post(COUNT, counting("long,forced-model", "a"))).code == 200
    assert [r.body["model"] for r in counts(long)] == ["large", "forced-model"]
    assert [r.body["model"] for r in counts(short)] == ["small"]
    entries = router.log_entries()
    assert [e["routing"]["matched"] for e in entries] == ["route", "default", "forced"]
    assert entries[0]["tags"] == ["long_context"]


@pytest.mark.gen_test
async def test_counting_runs_no_late_plugins(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=[
        {"use": "tests.plugins_for_tests.Recorder", "settings": {"name": "early", "pre_request": "MODIFIED"}},
        {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": "post_response"}},
        {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": "on_end"}},
    ]))
    response = await router.post(COUNT, counting("claude-sonnet-5-5"))
    assert response.code == 200 and "x-tornrouter-estimate" not in response.headers
    (entry,) = router.log_entries()
    assert entry["plugins"] == ["early"]  # the early stages ran; the late ones would have raised (and logged it)


@pytest.mark.gen_test
async def test_a_plugins_own_answer_is_counted_by_estimate(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"),
                                      plugins=[{"use": "tests.plugins_for_tests.ShortCircuit"}]))
    response = await router.post(COUNT, counting("claude-sonnet-5-5", "q" * 20))
    assert response.code == 200 and json.loads(response.body) == {"input_tokens": 5}
    assert response.headers["x-tornrouter-estimate"] == "characters/4" and upstream.requests == []


@pytest.mark.gen_test
async def test_a_failed_count_never_opens_the_circuit(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    config["providers"]["ant"]["breaker"] = {"failures": 1, "window_s": 60, "cooldown_s": 60}
    router = start_router(config)
    overloaded = error_body("anthropic", "Overloaded", "overloaded_error")
    upstream.then(Reply(status=529, body=overloaded), Reply(status=500, body=error_body("anthropic", "internal")))
    first = await router.post(COUNT, counting("claude-sonnet-5-5"))
    second = await router.post(COUNT, counting("claude-sonnet-5-5"))
    assert (first.code, json.loads(first.body)) == (529, overloaded)  # the upstream's own error, as a message's would be
    assert second.code == 500
    assert (await health(router))["providers"]["ant"]["breaker"]["state"] == "closed"
    assert (await router.post(ANTHROPIC, message("claude-sonnet-5-5"))).code == 200
    assert [r.path for r in upstream.requests] == [COUNT, COUNT, ANTHROPIC]  # one call each: no retries


@pytest.mark.gen_test
async def test_an_open_circuit_is_not_asked(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    config["providers"]["ant"]["breaker"] = {"failures": 1, "window_s": 60, "cooldown_s": 60}
    router = start_router(config)
    upstream.then(Reply(status=500, body=error_body("anthropic", "internal")))
    assert (await router.post(ANTHROPIC, message("claude-sonnet-5-5"))).code == 500
    response = await router.post(COUNT, counting("claude-sonnet-5-5", "z" * 80))
    assert response.code == 200 and json.loads(response.body) == {"input_tokens": 20}
    assert response.headers["x-tornrouter-estimate"] == "characters/4"
    assert counts(upstream) == []


@pytest.mark.gen_test
async def test_the_sdk_counts_through_the_router(router, upstream):
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="unused", max_retries=0)
    counted = await client.messages.count_tokens(model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hi"}])
    beta = await client.beta.messages.count_tokens(
        model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hello"}], betas=["context-1m-2025-08-07"],
    )
    estimated = await client.messages.count_tokens(model="to-openai", messages=[{"role": "user", "content": "x" * 40}])
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.count_tokens(model="claude-sonnet-5-5", messages=[])
    await client.close()
    assert counted.input_tokens == 1002 and beta.input_tokens == 1005 and estimated.input_tokens == 10
    assert "context-1m-2025-08-07" in counts(upstream)[1].headers["Anthropic-Beta"].split(",")
    assert caught.value.body == {"type": "error", "error": {
        "type": "router_error", "message": "messages: Shorter than minimum length 1."}}


@pytest.mark.gen_test
async def test_a_burst_of_fifty_counts(router, upstream):
    texts = [f"request number {i}" + "!" * i for i in range(50)]
    responses = await asyncio.gather(*(
        router.post(COUNT, counting("claude-sonnet-5-5", text), headers={"anthropic-beta": BETAS}) for text in texts
    ))
    assert [r.code for r in responses] == [200] * 50
    for text, response in zip(texts, responses):  # each its own count
        assert json.loads(response.body) == {"input_tokens": 1000 + len(text)}
    assert len(counts(upstream)) == 50 and all(r.headers["Anthropic-Beta"] == BETAS for r in counts(upstream))
    entries = router.log_entries()
    assert len(entries) == 50 and {e["endpoint"] for e in entries} == {COUNT}
    assert sorted(e["token_count"]["input_tokens"] for e in entries) == sorted(1000 + len(t) for t in texts)


@pytest.mark.gen_test
async def test_counting_has_its_own_rate_limit_and_no_bill(start_router, upstream, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)
    router = start_router(
        keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "rpm": 1, "tpm": 50, "count_tokens_rpm": 3}],
    )
    key = bearer(TEAM_A)
    codes = [(await router.post(COUNT, counting("claude-sonnet-5-5", "w" * 400), headers=key)).code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # its own limit, and not the key's rpm nor tpm
    refused = await router.post(COUNT, counting("claude-sonnet-5-5"), headers=key)
    assert "3 count_tokens requests per minute" in error_of(ANTHROPIC, refused.body)["message"]
    assert (await router.post(ANTHROPIC, message("claude-sonnet-5-5"), headers=key)).code == 200  # rpm untouched
    await router.runtime.access.drain()
    report = json.loads((await router.client.fetch(router.url + "/v1/usage", headers=key)).body)
    assert report["keys"]["team-a"]["total"]["requests"] == 1  # the message only: counting is not billed
    assert list(report["keys"]["team-a"]["models"]) == ["ant/claude-sonnet-5-5"]


@pytest.mark.gen_test
async def test_a_bad_count_tokens_body_is_a_400_naming_the_field(router, upstream):
    for body, problem in [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model: Missing data for required field."),
        (counting("claude-sonnet-5-5", max_tokens="many"), "max_tokens: Not a valid integer."),
        ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role: Must be one of: user, assistant, system."),
    ]:
        response = await router.post(COUNT, body)
        assert response.code == 400
        assert json.loads(response.body) == {"type": "error", "error": {"type": "router_error", "message": problem}}
    assert upstream.requests == []
