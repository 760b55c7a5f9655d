"""Client keys, model permissions, rate limits, budgets, costs and the usage
report, with the in-process state backend: the pieces alone, then through a
real router with the official SDKs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from types import SimpleNamespace
from typing import Any

import anthropic
import openai
import pytest

from tests.access_support import ADMIN_KEY, TEAM_A, TEAM_B, RawRequest, bearer, error_of
from tests.configs import echo_only
from tests.fake_upstream import Reply
from tests.waiting import poll
from tests.wire import ANTHROPIC, OPENAI, body_for, chat, message
from tornrouter.access import AccessControl, KeyRing, PriceTable
from tornrouter.access.control import seconds_left
from tornrouter.access.state import SLOTS, WINDOW, BackendUnavailable, Check, MemoryBackend
from tornrouter.canonical import ChatResponse, Usage
from tornrouter.config import Price, parse_config
from tornrouter.context import RequestRecord
from tornrouter.errors import ConfigError, RateLimited, StateUnavailable
from tornrouter.formats import codec_for

# --- configs ----------------------------------------------------------------------


def keys(**team_a: Any) -> list[dict[str, Any]]:
    """team-a (its key from the environment) with ``team_a`` limits, and team-b
    (configured by digest only), unlimited."""
    return [
        {"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["gpt-*", "claude-*", "local-*"], **team_a},
        {"name": "team-b", "key_sha256": hashlib.sha256(TEAM_B.encode()).hexdigest()},
    ]


@pytest.fixture(autouse=True)
def team_a_key(monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)


def keyed(start_router, admin: bool = True, **overrides: Any):
    server = {"dashboard": True, **({"admin_key": ADMIN_KEY} if admin else {})}
    overrides.setdefault("keys", keys())
    return start_router(server=server, **overrides)


# --- keys -----------------------------------------------------------------------------


def test_a_key_is_held_as_a_digest_and_found_by_either_header():
    config = parse_config(echo_only(keys=keys(rpm=5)), environ={"TEAM_A_KEY": TEAM_A})
    assert TEAM_A not in repr(config) and not hasattr(config.keys[0], "key")
    ring = KeyRing(config.keys)
    assert ring.identify({"Authorization": f"Bearer {TEAM_A}"}).name == "team-a"
    assert ring.identify({"Authorization": f"bearer {TEAM_A}"}).name == "team-a"
    assert ring.identify({"x-api-key": TEAM_B}).name == "team-b"
    assert ring.identify({"x-api-key": "nope", "Authorization": f"Bearer {TEAM_B}"}).name == "team-b"
    for headers in ({}, {"Authorization": TEAM_A}, {"Authorization": f"Bearer {TEAM_A}x"}, {"x-api-key": TEAM_A[:-1]}):
        assert ring.identify(headers) is None


def test_key_problems_are_reported_with_their_path():
    bad = keys() + [
        {"name": "team-a", "key": TEAM_B},                       # same name, same key as team-b
        {"name": "both", "key": "x", "key_sha256": "0" * 64},
        {"name": "neither"},
        {"name": "short-hash", "key_sha256": "abc"},
        {"name": "has space", "key": "y", "models": []},
    ]
    with pytest.raises(ConfigError) as error:
        parse_config(echo_only(keys=bad[:3]), environ={"TEAM_A_KEY": TEAM_A})
    assert error.value.problems == [
        "keys.2.name: 'team-a' is already the name of keys.0",
        "keys.2.key: the same key as keys.1",
    ]
    with pytest.raises(ConfigError) as error:
        parse_config(echo_only(keys=bad[3:], state={"backend": "redis"}), environ={})
    assert sorted(error.value.problems) == [
        "keys.0.key: give exactly one of key and key_sha256",
        "keys.1.key: give exactly one of key and key_sha256",
        "keys.2.key_sha256: expected 64 hex digits (sha256sum of the key)",
        "keys.3.models: list at least one model glob ('*' for all)",
        "keys.3.name: use letters, digits and _ . @ - only",
        "state.url: required for backend redis",
    ]


# --- prices -----------------------------------------------------------------------------


def test_prices_by_name_then_kind_undated_and_globs():
    table = PriceTable({"proxy/gpt-4o": Price(1.0, 2.0), "openai/my-*": Price(3.0, 4.0, cache_read=0.5)})
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000)
    assert table.cost("proxy", "openai", "gpt-4o", usage) == 1.0 + 2.0 + 1.0          # the name wins; cache at the input price
    assert table.cost("oai", "openai", "gpt-4o", usage) == 2.5 + 10.0 + 1.25          # the kind's default
    assert table.cost("oai", "openai", "gpt-4.1-2025-04-14", usage) == 2.0 + 8.0 + 0.5  # a snapshot, as its alias
    assert table.cost("oai", "openai", "my-model", usage) == 3.0 + 4.0 + 0.5          # the operator's glob
    assert table.cost("ant", "anthropic", "claude-sonnet-4-5-20250929", usage) == 3.0 + 15.0 + 0.3
    assert table.cost("e", "echo", "anything", usage) == 0.0
    assert table.cost("oai", "openai", "unknown-model", usage) is None


# --- the sliding window and the admission step ------------------------------------------


@pytest.mark.gen_test
async def test_a_window_slides_second_by_second():
    backend = MemoryBackend()
    rpm = [Check(WINDOW, "k:rpm", 3)]
    for t in (100.2, 100.7, 130.0):
        assert await backend.admit(rpm, "r", t, 60) is None
    refusal = await backend.admit(rpm, "r", 159.5, 60)
    assert refusal.index == 0 and refusal.retry_after_s == pytest.approx(0.5)  # second 100 leaves at 160
    assert await backend.admit(rpm, "r", 160.0, 60) is None  # second 100 held two: both places free
    assert await backend.admit(rpm, "r", 160.5, 60) is None
    assert (await backend.admit(rpm, "r", 160.8, 60)).retry_after_s == pytest.approx(29.2)  # then second 130's


@pytest.mark.gen_test
async def test_admission_is_all_or_nothing():
    backend = MemoryBackend()
    checks = [Check(WINDOW, "k:rpm", 10), Check(SLOTS, "k:conc", 1)]
    assert await backend.admit(checks, "first", 10.0, 60) is None
    assert (await backend.admit(checks, "second", 10.5, 60)).index == 1
    assert sum(backend.windows["k:rpm"].values()) == 1  # the refused request took nothing
    assert (await backend.admit([Check(WINDOW, "k:tpm", 10, amount=11)], "big", 11.0, 60)).retry_after_s is None


def context(body: dict[str, Any], endpoint: str = OPENAI) -> RequestRecord:
    record = RequestRecord("req-1", endpoint, http=None)
    record.ctx.request = codec_for("openai").parse_request(json.dumps(body).encode())
    return record


def answered(record: RequestRecord, usage: Usage) -> RequestRecord:
    record.ctx.response = ChatResponse(id="x", model="gpt-4o", usage=usage)
    record.usage = usage
    record.target = SimpleNamespace(provider=SimpleNamespace(name="oai", kind="openai", vendor="openai"), model="gpt-4o")
    return record


def control(clock: list[float], backend: Any = None, **extra: Any) -> AccessControl:
    config = parse_config(echo_only(keys=keys(**extra.pop("team_a", {})), **extra), environ={"TEAM_A_KEY": TEAM_A})
    return AccessControl(config, backend or MemoryBackend(), clock=lambda: clock[0])


@pytest.mark.gen_test
async def test_tokens_per_minute_count_the_estimate_then_what_was_used():
    clock = [1000.0]
    access = control(clock, team_a={"tpm": 1000})
    key = access.keys.identify(bearer(TEAM_A))
    ctx = context(chat("gpt-4o", "x" * 400))  # ~100 tokens estimated
    admission = await access.admit(ctx, key)
    assert admission.estimate == 100
    access.settle(answered(ctx, Usage(input_tokens=700, output_tokens=250)), admission)
    access.settle(ctx, admission)  # a second settle changes nothing
    await access.drain()
    assert sum(access.backend.windows["key:team-a:tpm"].values()) == 950
    with pytest.raises(RateLimited) as refused:
        await access.admit(context(chat("gpt-4o", "x" * 400)), key)
    assert refused.value.limit == "tpm" and refused.value.headers["Retry-After"] == "60"
    clock[0] += 60
    assert await access.admit(context(chat("gpt-4o", "x" * 400)), key)


class FlakyBackend(MemoryBackend):
    """A memory backend that can be switched off, as a Redis goes away."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def admit(self, *args: Any) -> Any:
        if self.down:
            raise BackendUnavailable("flaky: connection refused")
        return await super().admit(*args)

    async def settle(self, *args: Any) -> None:
        if self.down:
            raise BackendUnavailable("flaky: connection refused")
        await super().settle(*args)


@pytest.mark.gen_test
@pytest.mark.parametrize("on_error", ["fail_open", "fail_closed"])
async def test_an_unreachable_backend_follows_the_policy_and_is_logged_once(on_error, caplog):
    clock, backend = [5000.0], FlakyBackend()
    access = control(clock, backend, team_a={"rpm": 1}, state={"on_error": on_error})
    access.outage.retry_s = 0  # try the backend on every request
    team_a, team_b = access.keys.identify(bearer(TEAM_A)), access.keys.identify(bearer(TEAM_B))
    backend.down = True
    with caplog.at_level(logging.INFO, logger="tornrouter.access"):
        for _ in range(3):
            if on_error == "fail_open":
                assert (await access.admit(context(chat("gpt-4o")), team_a)).counted is False
            else:
                with pytest.raises(StateUnavailable):
                    await access.admit(context(chat("gpt-4o")), team_a)
        assert await access.admit(context(chat("gpt-4o")), team_b)  # no limits to check: served either way
        backend.down = False
        assert await access.admit(context(chat("gpt-4o")), team_a)
        with pytest.raises(RateLimited):
            await access.admit(context(chat("gpt-4o")), team_a)
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "unreachable" in line]) == 1
    assert len([line for line in lines if "reachable again" in line]) == 1


def test_budgets_reset_at_the_end_of_the_utc_day_and_month():
    assert seconds_left("day", 86400 * 3 + 10) == 86400 - 10
    assert seconds_left("month", 1706745600 - 5) == 5  # 2024-02-01T00:00:00Z


# --- through the router: keys -------------------------------------------------------------


@pytest.mark.gen_test
async def test_an_open_router_says_so_and_records_usage_anonymously(start_router, caplog):
    with caplog.at_level(logging.WARNING, logger="tornrouter.access"):
        router = start_router()
    assert any("open to anyone" in r.getMessage() for r in caplog.records)
    assert (await router.post(OPENAI, chat("local-echo"))).code == 200
    (entry,) = router.log_entries()
    assert entry["key"] is None and entry["cost_usd"] == 0.0
    await router.runtime.access.drain()
    usage = json.loads((await router.get("/v1/usage")).body)
    assert usage["keys"]["anonymous"]["total"]["requests"] == 1


@pytest.mark.gen_test
async def test_the_sdks_authenticate_with_router_keys(start_router, upstream):
    router = keyed(start_router)
    async with openai.AsyncOpenAI(base_url=router.url + "/v1", api_key=TEAM_A, max_retries=0) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content
    async with anthropic.AsyncAnthropic(base_url=router.url, api_key=TEAM_B, max_retries=0) as aclient:
        answer = await aclient.messages.create(model="claude-sonnet-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert answer.content[0].text
    # The client's key stays at the router: upstreams get the provider's own.
    assert [r.headers.get("Authorization") or r.headers.get("X-Api-Key") for r in upstream.requests] == [
        "Bearer sk-test-openai-SECRET", "sk-ant-test-SECRET",
    ]
    assert [e["key"] for e in router.log_entries()] == ["team-a", "team-b"]
    with open(router.log_path, encoding="utf-8") as f:
        logged = f.read()
    assert TEAM_A not in logged and TEAM_B not in logged and ADMIN_KEY not in logged
    async with openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    async with anthropic.AsyncAnthropic(base_url=router.url, api_key="wrong", max_retries=0) as aclient:
        with pytest.raises(anthropic.AuthenticationError):
            await aclient.messages.create(model="claude-sonnet-5-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_either_header_on_either_endpoint(start_router, path):
    router = keyed(start_router)
    for headers in (bearer(TEAM_A), {"x-api-key": TEAM_A}):
        assert (await router.post(path, body_for(path, "local-echo"), headers=headers)).code == 200


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("headers,message", [
    ({}, "missing API key"),
    (bearer("tr-team-a-WRONG"), "invalid API key"),
    ({"x-api-key": TEAM_A + " "}, None),  # trailing space: stripped, so valid
    ({"x-api-key": TEAM_A[:-1]}, "invalid API key"),
])
async def test_a_missing_or_wrong_key_is_401_in_the_apis_shape(start_router, path, headers, message):
    router = keyed(start_router)
    response = await router.post(path, body_for(path, "local-echo"), headers=headers)
    if message is None:
        assert response.code == 200
        return
    assert response.code == 401
    error = error_of(path, response.body)
    assert error["message"].startswith(message) and TEAM_A[:-1] not in error["message"]
    (entry,) = router.log_entries()
    assert entry["status"] == 401 and entry["key"] is None


@pytest.mark.gen_test
async def test_401_is_answered_before_the_body_is_sent(start_router):
    router = keyed(start_router)
    request = await RawRequest.open(router.port, OPENAI, {}, content_length=100_000)
    assert await request.status() == 401
    await request.hang_up()


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_a_model_the_key_may_not_use_is_403(start_router, path):
    router = keyed(start_router)
    for model in ("o3", "echo,gpt-4o"):  # not in the globs; a forced provider is matched as written
        response = await router.post(path, body_for(path, model), headers=bearer(TEAM_A))
        assert response.code == 403
        error = error_of(path, response.body)
        assert error["message"] == f"key 'team-a' may not use model '{model}'"
    assert [(e["status"], e["requested_model"], e["key"]) for e in router.log_entries()] == [
        (403, "o3", "team-a"), (403, "echo,gpt-4o", "team-a")]


@pytest.mark.gen_test
async def test_the_models_list_asks_for_a_key(start_router):
    router = keyed(start_router)
    assert (await router.get("/v1/models")).code == 401
    response = await router.client.fetch(router.url + "/v1/models", headers=bearer(TEAM_B))
    assert response.code == 200 and json.loads(response.body)["object"] == "list"


# --- through the router: limits and budgets --------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_requests_per_minute_per_key(start_router, path):
    router = keyed(start_router, keys=keys(rpm=3))
    codes = [(await router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_A))).code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = await router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_A))
    assert refused.code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = error_of(path, refused.body)
    assert error["message"].startswith("key 'team-a' is over its limit of 3 requests per minute; retry in ")
    assert (await router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_B))).code == 200  # another key


@pytest.mark.gen_test
async def test_the_openai_sdk_sees_a_rate_limit_error(start_router):
    router = keyed(start_router, keys=keys(rpm=1))
    async with openai.AsyncOpenAI(base_url=router.url + "/v1", api_key=TEAM_A, max_retries=0) as client:
        await client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.response.headers["retry-after"]
    assert refused.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.gen_test
async def test_a_request_larger_than_the_token_limit_is_refused(start_router):
    router = keyed(start_router, keys=keys(tpm=50))
    response = await router.post(OPENAI, chat("local-echo", "x" * 1000), headers=bearer(TEAM_A))
    assert response.code == 429
    assert "exceed the limit of key 'team-a': 50 tokens per minute" in error_of(OPENAI, response.body)["message"]


@pytest.mark.gen_test
async def test_concurrency_is_limited_and_a_slot_comes_back_when_the_client_leaves(start_router, upstream):
    router = keyed(start_router, keys=keys(concurrency=1))
    # A stream, which the router stops upstream when its client leaves (a plain
    # request holds its slot until the upstream answers: it is still running).
    upstream.then(Reply(delay=30, sse=[b"data: [DONE]\n\n"]))
    first = await RawRequest.post(router.port, OPENAI, {**chat("gpt-4o"), "stream": True}, bearer(TEAM_A))
    await poll(lambda: upstream.requests, "the first request to reach the upstream")
    second = await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))
    assert second.code == 429
    assert "already has 1 requests in flight" in error_of(OPENAI, second.body)["message"]
    await first.hang_up()

    async def admitted() -> bool:
        return (await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code == 200

    await poll(admitted, "the slot of the request whose client left", timeout=15, every=0.05)
    (left,) = [e for e in router.log_entries() if e["stream"]]
    assert left["cancelled"] is True and left["key"] == "team-a"
    for _ in range(3):  # sequential requests each give their slot back
        assert await admitted()


@pytest.mark.gen_test
async def test_model_limits_are_shared_by_every_key(start_router):
    router = keyed(start_router, model_limits=[{"model": "local-*", "rpm": 2}])
    assert (await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code == 200
    assert (await router.post(ANTHROPIC, message("local-other"), headers=bearer(TEAM_B))).code == 200
    refused = await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_B))
    assert refused.code == 429
    assert error_of(OPENAI, refused.body)["message"].startswith("models 'local-*' is over its limit of 2 requests per minute")
    assert (await router.post(OPENAI, chat("gpt-4o"), headers=bearer(TEAM_B))).code == 200


@pytest.mark.gen_test
async def test_cost_is_logged_and_a_spent_daily_budget_refuses(start_router):
    prices = {"oai/gpt-4o": {"input": 10.0, "output": 20.0, "cache_read": 1.0}}
    router = keyed(start_router, keys=keys(budget_usd_per_day=0.0002), prices=prices)
    assert (await router.post(OPENAI, chat("gpt-4o"), headers=bearer(TEAM_A))).code == 200
    (entry,) = router.log_entries()
    # the fake upstream: 12 prompt tokens of which 2 cached, 8 completion tokens
    assert entry["usage"] == {"input_tokens": 10, "output_tokens": 8, "cache_read_tokens": 2}
    assert entry["cost_usd"] == pytest.approx((10 * 10.0 + 8 * 20.0 + 2 * 1.0) / 1e6)
    await router.runtime.access.drain()
    refused = await router.post(ANTHROPIC, message("claude-sonnet-5-5"), headers=bearer(TEAM_A))
    assert refused.code == 429
    error = error_of(ANTHROPIC, refused.body)
    assert error["type"] == "router_error"
    assert error["message"] == "key 'team-a' has spent its daily budget of $0.0002; it is renewed at the start of the next day (UTC)"
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400
    assert json.loads(refused.body)["error"]["message"]
    assert (await router.post(OPENAI, chat("gpt-4o"), headers=bearer(TEAM_B))).code == 200


# --- usage, dashboard, metrics: who may read them ---------------------------------------------


@pytest.mark.gen_test
async def test_usage_per_key_and_model_for_the_admin_and_for_each_key(start_router):
    router = keyed(start_router, keys=keys(budget_usd_per_month=20))
    for headers, body in ((bearer(TEAM_A), chat("gpt-4o")), (bearer(TEAM_A), chat("gpt-4o")), ({"x-api-key": TEAM_B}, chat("local-echo"))):
        assert (await router.post(OPENAI, body, headers=headers)).code == 200
    await router.runtime.access.drain()

    async def usage(query: str, headers: dict[str, str]) -> tuple[int, Any]:
        response = await router.client.fetch(router.url + "/v1/usage" + query, headers=headers, raise_error=False)
        return response.code, json.loads(response.body)

    code, report = await usage("?period=month", bearer(ADMIN_KEY))
    assert code == 200 and report["period"] == "month" and set(report["keys"]) == {"team-a", "team-b"}
    team_a = report["keys"]["team-a"]
    assert team_a["models"]["oai/gpt-4o"]["requests"] == 2 and team_a["models"]["oai/gpt-4o"]["output_tokens"] == 16
    assert team_a["total"]["cost_usd"] == pytest.approx(2 * (10 * 2.5 + 2 * 1.25 + 8 * 10.0) / 1e6)
    assert team_a["budget_usd"] == 20
    assert report["keys"]["team-b"]["models"]["echo/local-echo"]["requests"] == 1
    code, report = await usage("", bearer(TEAM_A))  # a client key: its own, today
    assert code == 200 and report["period"] == "day" and set(report["keys"]) == {"team-a"}
    assert (await usage("?key=team-b", bearer(ADMIN_KEY)))[1]["keys"].keys() == {"team-b"}
    assert (await usage("?key=team-b", bearer(TEAM_A)))[0] == 403
    assert (await usage("", {}))[0] == 401
    assert (await usage("", bearer("tr-admin-WRONG")))[0] == 401
    code, error = await usage("?period=week", bearer(ADMIN_KEY))
    assert code == 400 and error["error"]["param"] == "period"


async def raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and first bytes of a GET (the feed never ends: read its start, hang up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    await writer.wait_closed()
    return int(head.split()[1]), head


@pytest.mark.gen_test
async def test_dashboard_feed_and_metrics_ask_for_the_admin_key(start_router, caplog):
    router = keyed(start_router)
    assert (await raw_get(router.port, "/dashboard"))[0] == 401
    assert (await raw_get(router.port, f"/dashboard?key={TEAM_A}"))[0] == 401  # a client key is not the admin key
    assert (await raw_get(router.port, f"/dashboard?key={ADMIN_KEY}"))[0] == 200
    assert (await raw_get(router.port, "/dashboard", bearer(ADMIN_KEY)))[0] == 200
    assert (await raw_get(router.port, "/dashboard/events"))[0] == 401
    code, head = await raw_get(router.port, f"/dashboard/events?key={ADMIN_KEY}")
    assert code == 200 and b"text/event-stream" in head
    assert (await raw_get(router.port, "/metrics"))[0] == 401
    assert (await raw_get(router.port, f"/metrics?key={ADMIN_KEY}"))[0] == 401  # headers only, outside the browser
    assert (await raw_get(router.port, "/metrics", bearer(ADMIN_KEY)))[0] == 200
    with caplog.at_level(logging.WARNING, logger="tornado.access"):
        await raw_get(router.port, "/dashboard?key=tr-admin-typo")
    assert "tr-admin-typo" not in caplog.text and "key=***" in caplog.text


@pytest.mark.gen_test
async def test_the_dashboard_shows_key_names_never_keys(start_router):
    router = keyed(start_router)
    subscriber = router.runtime.events.subscribe()
    assert (await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code == 200
    assert (await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A + "x"))).code == 401
    lines = await subscriber.next_batch(5)
    router.runtime.events.unsubscribe(subscriber)
    assert [json.loads(line)["key"] for line in lines] == ["team-a", None]
    assert not any(TEAM_A in line for line in lines)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_fail_closed_answers_503_in_the_apis_shape(start_router, path):
    router = keyed(start_router, keys=keys(rpm=100), state={"on_error": "fail_closed"})
    backend = FlakyBackend()
    backend.down = True
    router.runtime.access.backend = backend
    response = await router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_A))
    assert response.code == 503 and response.headers["Retry-After"] == "1"
    assert "state backend unreachable" in error_of(path, response.body)["message"]
    assert (await router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_B))).code == 200  # nothing to check


@pytest.mark.gen_test
async def test_a_reload_keeps_the_state_and_metrics_when_the_state_section_is_unchanged():
    from tornrouter.runtime import Runtime

    environ = {"TEAM_A_KEY": TEAM_A}
    first = Runtime(parse_config(echo_only(keys=keys(rpm=1)), environ=environ))
    second = Runtime(parse_config(echo_only(keys=keys(rpm=2)), environ=environ), first)
    assert second.access.backend is first.access.backend and second.metrics is first.metrics
    third = Runtime(parse_config(echo_only(keys=keys(), state={"on_error": "fail_closed"}), environ=environ), second)
    assert third.access.backend is not second.access.backend
    for runtime in (first, second, third):
        await runtime.close_access()
        runtime.close()


def test_the_shipped_cluster_config_is_valid():
    import os

    from tornrouter.config import load_config

    environ = {"TORNROUTER_ADMIN_KEY": ADMIN_KEY, "TEAM_A_KEY": TEAM_A, "BATCH_KEY_SHA256": "ab" * 32,
               "ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "TORNROUTER_INSTANCE": "2"}
    config = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf", "cluster.yaml"), environ=environ)
    assert config.state.backend == "redis" and [k.name for k in config.keys] == ["team-a", "batch"]
    assert config.request_log.endswith("requests.2.jsonl")
