"""Explain: a request sent with ``x-tornrouter-dry-run: 1`` (or given to
``tornrouter explain``) runs up to its provider call and is answered with why
it would go where; nothing reaches an upstream and nothing is billed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.access_support import ADMIN_KEY, TEAM_A, bearer, error_of
from tests.configs import base_config, every_model_to, provider
from tests.redis_support import needs_redis
from tests.wire import ANTHROPIC, OPENAI, RESPONSES, body_for
from tornrouter.config import parse_config
from tornrouter.explain_command import infer_api
from tornrouter.plugins import BasePlugin
from tornrouter.runtime import Runtime

DRY = {"x-tornrouter-dry-run": "1"}
CARD = "4111111111111111"
TOOLS = {
    OPENAI: [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    ANTHROPIC: [{"name": "get_weather", "input_schema": {"type": "object"}}],
    RESPONSES: [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
}


def explained_config(upstream_url: str, log_path: str, **more: Any) -> dict[str, Any]:
    """Two classifiers, two plugins that change the request, and a third route
    (loadbalanced, cached) reached past two that do not match a tools request."""
    config = base_config(upstream_url, log_path, **more)
    config["providers"]["oai"]["breaker"] = {"failures": 3, "window_s": 60, "cooldown_s": 30}
    config["classifiers"] = [{"use": "tools"}, {"use": "keyword", "tag": "urgent", "patterns": ["urgent"]}]
    config["plugins"] = [
        {"use": "redact", "settings": {"patterns": [r"\d{16}"]}},
        {"use": "system_prompt", "models": ["gpt-*"], "settings": {"text": "Be brief."}},
    ]
    config["router"]["routes"] = [
        {"model": "claude-*", "to": "ant"},
        {"model": "gpt-*", "tags": ["urgent"], "to": "ant/claude-haiku-4-5"},
        {"model": "gpt-*", "strategy": "loadbalance", "cache": {"ttl_s": 600},
         "to": [{"target": "oai/gpt-4o", "weight": 3}, "oresp/gpt-5-mini"]},
        *config["router"]["routes"],
    ]
    for route in config["router"]["routes"]:
        if route["model"] == "to-openai":  # one target: the same cache key, whatever the request's id
            route["cache"] = {"ttl_s": 600}
    return config


@pytest.fixture
def explained(start_router, upstream, tmp_path):
    return start_router(explained_config(upstream.url, str(tmp_path / "requests.jsonl")))


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES])
@pytest.mark.gen_test
async def test_a_dry_run_explains_the_route_and_sends_nothing(explained, upstream, path):
    body = body_for(path, "gpt-4o", f"my card is {CARD}", tools=TOOLS[path], temperature=0)

    response = await explained.post(path, body, DRY)

    assert response.code == 200, response.body
    assert response.headers["x-tornrouter-dry-run"] == "1"
    out = json.loads(response.body)
    assert out["dry_run"] is True and out["id"] == response.headers["x-request-id"]
    assert out["tags"] == {"tools": "tools"}
    routing = out["routing"]
    assert (routing["matched"], routing["index"], routing["pattern"], routing["strategy"]) == ("route", 2, "gpt-*", "loadbalance")
    assert routing["not_matched"] == [
        {"index": 0, "pattern": "claude-*", "tags": [], "reason": "model 'gpt-4o' does not match 'claude-*'"},
        {"index": 1, "pattern": "gpt-*", "tags": ["urgent"], "reason": "missing tag: urgent"},
    ]
    candidates = {c["target"]: c for c in out["candidates"]}
    assert set(candidates) == {"oai/gpt-4o", "oresp/gpt-5-mini"}
    assert candidates["oai/gpt-4o"]["breaker"]["state"] == "closed" and candidates["oresp/gpt-5-mini"]["breaker"] is None
    assert all(c["healthy"] and c["in_flight"] == 0 and c["queued"] == 0 for c in out["candidates"])
    # The plugins ran, and the diff shows what each changed in the canonical request.
    assert [(p["id"], p["ran"]) for p in out["plugins"]] == [("redact", ["pre_request"]), ("system_prompt", ["pre_request"])]
    changes = {c["path"]: c for c in out["changes"]}
    assert changes["/messages/0/content/0/text"]["before"] == f"my card is {CARD}"
    assert changes["/messages/0/content/0/text"]["after"] == "my card is [REDACTED]"
    assert changes["/system/0"] == {"op": "add", "path": "/system/0", "after": {"type": "text", "text": "Be brief."}}
    assert out["access"] == {"key": None, "estimated_input_tokens": out["access"]["estimated_input_tokens"],
                             "limits": [], "admitted": True}
    assert out["lossy"]["target"] == out["candidates"][0]["target"] and isinstance(out["lossy"]["fields"], list)
    assert out["estimate"]["input_tokens"] > 0 and out["estimate"]["input_cost_usd"] > 0
    assert out["cache"]["enabled"] is True and out["cache"]["would_hit"] is False
    # Nothing went upstream; the dry run is logged once, as such, with no provider and no cost.
    assert upstream.requests == []
    entries = explained.log_entries()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["dry_run"], entry["status"], entry["provider"], entry["cost_usd"]) == (True, 200, None, None)
    assert entry["request"]["tools"] == ["get_weather"]


@pytest.mark.gen_test
async def test_a_real_request_is_logged_as_not_a_dry_run_and_then_the_cache_would_hit(explained, upstream):
    body = body_for(OPENAI, "to-openai", "what is the capital of France?", temperature=0)

    real = await explained.post(OPENAI, body)
    assert real.code == 200 and real.headers["x-tornrouter-cache"] == "store"
    dry = json.loads((await explained.post(OPENAI, body, DRY)).body)

    assert dry["cache"]["would_hit"] is True and dry["cache"]["target"] == real.headers["x-tornrouter-provider"] + "/" + \
        real.headers["x-tornrouter-model"]
    assert len(upstream.requests) == 1
    assert [e["dry_run"] for e in explained.log_entries()] == [False, True]


@pytest.mark.gen_test
async def test_a_request_no_route_takes_is_explained(start_router, upstream, tmp_path):
    config = explained_config(upstream.url, str(tmp_path / "requests.jsonl"))
    del config["router"]["default"]
    router = start_router(config)

    out = json.loads((await router.post(OPENAI, body_for(OPENAI, "mistral-large"), DRY)).body)

    assert out["routing"]["matched"] is None
    assert out["routing"]["error"] == "no provider configured for model 'mistral-large'"
    assert len(out["routing"]["not_matched"]) == len(config["router"]["routes"])
    assert out["candidates"] == [] and out["lossy"] is None


@pytest.mark.gen_test
async def test_a_forced_provider_is_explained_and_its_split_is_no_change(explained):
    out = json.loads((await explained.post(OPENAI, body_for(OPENAI, "ant,claude-opus-4-5"), DRY)).body)

    assert out["routing"] == {"matched": "forced", "forced_provider": "ant"}
    assert [c["target"] for c in out["candidates"]] == ["ant/claude-opus-4-5"]
    assert out["changes"] == []  # the router's split of "ant,claude-opus-4-5" is no plugin's change


@pytest.mark.gen_test
async def test_the_lossy_list_is_the_first_candidates(explained):
    body = body_for(OPENAI, "to-anthropic", logprobs=True)

    out = json.loads((await explained.post(OPENAI, body, DRY)).body)

    assert out["lossy"] == {"target": "ant/claude-haiku-4-5", "fields": ["logprobs"]}


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.gen_test
async def test_a_bad_body_gets_the_same_400_as_a_real_request(explained, upstream, path):
    body = {"model": "gpt-4o", "messages": "hello"}

    real = await explained.post(path, body)
    dry = await explained.post(path, body, DRY)

    assert dry.code == real.code == 400
    assert error_of(path, dry.body) == error_of(path, real.body)


@pytest.mark.gen_test
async def test_a_plugin_that_answers_is_named(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"),
                                      plugins=[{"use": "tests.plugins_for_tests.ShortCircuit"}]))

    out = json.loads((await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), DRY)).body)

    assert out["stopped_by_plugin"] == {"plugin": "shortcircuit", "answered": True}
    assert out["candidates"] == [] and out["routing"] == {"matched": None}
    assert upstream.requests == []


# --- keys -----------------------------------------------------------------------------


@pytest.fixture
def keyed(start_router, upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)
    return start_router(base_config(
        upstream.url, str(tmp_path / "requests.jsonl"),
        server={"dashboard": True, "admin_key": ADMIN_KEY},
        keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["gpt-*"], "rpm": 5, "budget_usd_per_day": 2}],
    ))


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.gen_test
async def test_a_client_key_dry_runs_only_its_models_and_the_admin_key_any(keyed, upstream, path):
    other = body_for(path, "claude-haiku-4-5")

    refused = await keyed.post(path, other, {**DRY, **bearer(TEAM_A)})
    real = await keyed.post(path, other, bearer(TEAM_A))
    as_admin = await keyed.post(path, other, {**DRY, **bearer(ADMIN_KEY)})
    admin_not_dry = await keyed.post(path, other, bearer(ADMIN_KEY))

    assert refused.code == real.code == 403
    assert error_of(path, refused.body) == error_of(path, real.body)
    assert "may not use model 'claude-haiku-4-5'" in error_of(path, refused.body)["message"]
    assert as_admin.code == 200 and json.loads(as_admin.body)["routing"]["pattern"] == "claude-*"
    assert admin_not_dry.code == 401  # the admin key explains; it does not call models
    assert upstream.requests == []


@pytest.mark.gen_test
async def test_a_dry_run_reports_limits_and_budget_left_without_spending_them(keyed, upstream):
    body = body_for(OPENAI, "gpt-4o")
    assert (await keyed.post(OPENAI, body, bearer(TEAM_A))).code == 200  # one real request: 1 of 5 rpm used

    outs = [json.loads((await keyed.post(OPENAI, body, {**DRY, **bearer(TEAM_A)})).body) for _ in range(6)]

    limits = {row["limit"]: row for row in outs[-1]["access"]["limits"]}
    assert outs[-1]["access"]["key"] == "team-a" and outs[-1]["access"]["admitted"] is True
    assert (limits["rpm"]["max"], limits["rpm"]["used"], limits["rpm"]["remaining"]) == (5, 1, 4)
    spent = keyed.log_entries()[0]["cost_usd"]
    assert limits["budget_day"]["max"] == 2 and limits["budget_day"]["remaining"] == pytest.approx(2 - spent)
    assert (await keyed.post(OPENAI, body, bearer(TEAM_A))).code == 200  # six dry runs spent none of the five
    assert len(upstream.requests) == 2


# --- the command line ---------------------------------------------------------------------


def test_tornrouter_explain_prints_the_explanation(tmp_path, upstream):
    conf = tmp_path / "conf.yaml"
    config = explained_config(upstream.url, str(tmp_path / "requests.jsonl"))
    conf.write_text(yaml.safe_dump(config))
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body_for(ANTHROPIC, "gpt-4o", "urgent: the build is red", system="be terse")))

    done = subprocess.run([sys.executable, "-m", "tornrouter", "explain", "--conf", str(conf), str(request)],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["api"] == "messages" and out["endpoint"] == "/v1/messages"
    assert out["tags"] == {"urgent": "keyword"}
    assert (out["routing"]["index"], [c["target"] for c in out["candidates"]]) == (1, ["ant/claude-haiku-4-5"])
    assert upstream.requests == []
    assert not (tmp_path / "requests.jsonl").exists()  # nothing served, nothing logged


def test_tornrouter_explain_refuses_a_bad_body_with_the_reason(tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"providers": {"echo": {"kind": "echo"}}, "router": {"default": "echo"}}))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "m", "messages": "hello"}))

    done = subprocess.run([sys.executable, "-m", "tornrouter", "explain", "--conf", str(conf), "--api", "chat", str(request)],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 1 and done.stdout == ""
    assert "tornrouter explain: 400: " in done.stderr and "messages" in done.stderr


# --- deterministic loadbalance ------------------------------------------------------------------


def balanced_router():
    config = base_config("http://127.0.0.1:9", "", router={"default": {
        "strategy": "loadbalance", "to": [{"target": "oai/gpt-4o", "weight": 3}, {"target": "ant/claude-haiku-4-5", "weight": 1}],
    }})
    del config["log"]
    return Runtime(parse_config(config, environ={})).router


def first_target(router, request_id: str) -> str:
    decision = router.resolve("any-model", {}, None, request_id)
    return f"{decision.candidates[0].provider.name}/{decision.candidates[0].model}"


def test_the_same_request_id_draws_the_same_order():
    router, again = balanced_router(), balanced_router()  # another runtime: as replay builds its own

    for n in range(50):
        request_id = hashlib.sha256(str(n).encode()).hexdigest()[:16]
        assert first_target(router, request_id) == first_target(again, request_id)


def test_different_request_ids_spread_by_weight():
    router = balanced_router()

    firsts = Counter(first_target(router, f"{n:016x}") for n in range(4000))

    # Expected 3000 of 4000 first to the weight-3 target; sd ~27, the band is five sd wide each side.
    assert 2865 <= firsts["oai/gpt-4o"] <= 3135, firsts


# --- sessions, streams, a shared state ----------------------------------------------------


@pytest.mark.gen_test
async def test_a_dry_run_shows_the_sessions_pinned_target_first(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(every_model_to(tmp_path, {"a": provider("anthropic", a.url), "b": provider("anthropic", b.url)},
                                         ["a/model-a", "b/model-b"], strategy="loadbalance"))
    session = {"X-Claude-Code-Session-Id": "s-1"}
    served = await router.post(ANTHROPIC, body_for(ANTHROPIC, "any"), session)
    pinned = f"{served.headers['x-tornrouter-provider']}/{served.headers['x-tornrouter-model']}"

    outs = [json.loads((await router.post(ANTHROPIC, body_for(ANTHROPIC, "any"), {**DRY, **session})).body) for _ in range(6)]

    assert all(out["session"] == {"name": "s-1", "pinned": pinned} for out in outs)
    assert all(out["candidates"][0]["target"] == pinned for out in outs)
    assert len(a.requests) + len(b.requests) == 1


@pytest.mark.gen_test
async def test_a_streamed_request_is_explained_in_json(explained, upstream):
    response = await explained.post(ANTHROPIC, body_for(ANTHROPIC, "gpt-4o", stream=True), DRY)

    assert response.code == 200 and response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body)["routing"]["index"] == 2
    assert upstream.requests == []


@needs_redis
@pytest.mark.gen_test
async def test_limits_held_in_redis_are_read_not_counted(start_router, upstream, redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)
    router = start_router(base_config(
        upstream.url, str(tmp_path / "requests.jsonl"), state={"backend": "redis", "url": redis_server.url},
        keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["*"], "rpm": 3, "concurrency": 2}],
    ))
    assert (await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), bearer(TEAM_A))).code == 200

    for _ in range(4):
        out = json.loads((await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), {**DRY, **bearer(TEAM_A)})).body)

    limits = {row["limit"]: row for row in out["access"]["limits"]}
    assert (limits["rpm"]["used"], limits["rpm"]["remaining"], limits["rpm"]["would_refuse"]) == (1, 2, False)
    assert (limits["concurrency"]["used"], limits["concurrency"]["remaining"]) == (0, 2)


class Audit(BasePlugin):
    """Appends a line to ``settings['path']`` at Start, unless the request is a dry run."""

    async def on_start(self, ctx):
        if not ctx.dry_run:
            with open(self.settings["path"], "a") as f:
                f.write(ctx.request.model + "\n")


@pytest.mark.gen_test
async def test_a_plugin_can_tell_a_dry_run_and_skip_its_side_effects(start_router, upstream, tmp_path):
    audit = tmp_path / "audit.txt"
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"),
                                      plugins=[{"use": "tests.test_explain.Audit", "settings": {"path": str(audit)}}]))

    assert (await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), DRY)).code == 200
    assert not audit.exists()
    assert (await router.post(OPENAI, body_for(OPENAI, "gpt-4o"))).code == 200
    assert audit.read_text() == "gpt-4o\n"


@pytest.mark.gen_test
async def test_a_dry_run_says_which_limit_would_refuse_the_request(start_router, upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"),
                                      keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["*"], "rpm": 1}]))
    assert (await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), bearer(TEAM_A))).code == 200

    out = json.loads((await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), {**DRY, **bearer(TEAM_A)})).body)

    assert out["access"]["admitted"] is False and out["access"]["refused_by"] == "key rpm"
    assert out["access"]["limits"] == [{"scope": "key", "limit": "rpm", "max": 1, "used": 1, "remaining": 0, "would_refuse": True}]
    assert (await router.post(OPENAI, body_for(OPENAI, "gpt-4o"), bearer(TEAM_A))).code == 429  # as it said


@pytest.mark.parametrize(("body", "api"), [
    ({"model": "m", "input": "hi"}, "responses"),
    ({"model": "m", "max_tokens": 10, "system": "terse", "messages": [{"role": "user", "content": "hi"}]}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "1"}]}]}, "messages"),
    ({"model": "m", "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]}, "chat"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "chat"),
])
def test_tornrouter_explain_infers_the_api_from_the_body(body, api):
    assert infer_api(body) == api


@pytest.mark.gen_test
async def test_a_dry_run_is_not_counted_as_a_request_in_the_metrics(explained):
    assert (await explained.post(OPENAI, body_for(OPENAI, "gpt-4o"), DRY)).code == 200

    scrape = (await explained.get("/metrics")).body.decode()

    assert 'tornrouter_requests_total{endpoint="/v1/chat/completions"' not in scrape
    assert 'tornrouter_requests_in_flight{endpoint="/v1/chat/completions"} 0.0' in scrape
