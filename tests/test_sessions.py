"""Session-sticky routing: a session stays on the target that served its first
request while that target is healthy, and moves, saying so, when it fails."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

import pytest

from tests.configs import every_model_to, provider
from tests.fake_upstream import Reply
from tests.upstream_faults import error_body, request_body
from tests.wire import ANTHROPIC, OPENAI, chat, message

SESSION = "X-Claude-Code-Session-Id"


def balanced(tmp_path, a, b, **options):
    """Every model to the Anthropic-kind pair ``a`` and ``b``, load-balanced evenly."""
    return every_model_to(tmp_path, {"a": provider("anthropic", a.url), "b": provider("anthropic", b.url)},
                          ["a/model-a", "b/model-b"], strategy="loadbalance", **options)


async def served_by(router, session: str | None, path: str = ANTHROPIC, body=None) -> str:
    """Who answered a request of ``session`` (None: the request names none)."""
    headers = {SESSION: session} if session else {}
    response = await router.post(path, body or request_body(path), headers=headers)
    assert response.code == 200, response.body
    return response.headers["x-tornrouter-provider"]


@pytest.mark.gen_test
async def test_a_session_stays_on_the_target_of_its_first_request(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(balanced(tmp_path, a, b))

    sessions = {f"session-{i}": [await served_by(router, f"session-{i}") for _ in range(4)] for i in range(12)}
    without = [await served_by(router, None) for _ in range(24)]

    for served in sessions.values():
        assert len(set(served)) == 1, sessions  # 4 requests, one target
    assert {served[0] for served in sessions.values()} == {"a", "b"}  # yet the sessions are spread
    assert set(without) == {"a", "b"}  # and requests without a session are balanced as before
    entries = [e for e in router.log_entries() if e["session"] == "session-0"]
    target = f"{sessions['session-0'][0]}/model-{sessions['session-0'][0]}"
    assert [e["affinity"] for e in entries] == [{"pin": "new", "target": target}] + [{"pin": "kept", "target": target}] * 3
    assert all(e["affinity"] is None for e in router.log_entries() if e["session"] is None)


@pytest.mark.gen_test
async def test_when_the_pinned_target_fails_the_session_moves_and_stays_moved(start_router, fakes, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tornrouter.sessions")
    a, b = fakes(), fakes()
    router = start_router(balanced(tmp_path, a, b))
    first = await served_by(router, "s1")
    pinned, other = (a, b) if first == "a" else (b, a)
    pinned.then(Reply(status=529, body=error_body("anthropic", "Overloaded", "overloaded_error")))

    moved = await served_by(router, "s1")
    after = [await served_by(router, "s1") for _ in range(5)]  # the first target is fine again: the session stays

    assert moved != first and set(after) == {moved}
    assert len(pinned.requests) == 2 and len(other.requests) == 6
    entry = router.log_entries()[1]
    assert entry["affinity"] == {"pin": "moved", "target": f"{moved}/model-{moved}", "from": f"{first}/model-{first}",
                                 "reason": f"provider '{first}': upstream returned 529: Overloaded"}
    assert [e["affinity"]["pin"] for e in router.log_entries()[2:]] == ["kept"] * 5
    (line,) = [r.getMessage() for r in caplog.records if "moved" in r.getMessage()]
    assert f"session s1 moved from {first}/model-{first} to {moved}/model-{moved}" in line


@pytest.mark.gen_test
async def test_a_session_leaves_a_target_whose_circuit_is_open(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    breaker = {"failures": 1, "window_s": 60, "cooldown_s": 60}
    router = start_router(every_model_to(
        tmp_path, {"a": provider("anthropic", a.url, breaker=breaker), "b": provider("anthropic", b.url)},
        ["a/model-a", "b/model-b"],  # a fallback list: a first, unless a session says otherwise
    ))
    assert await served_by(router, "s1") == "a"
    a.then(Reply(status=500, body=error_body("anthropic", "internal")))
    assert await served_by(router, "s2") == "b"  # fails over; a's circuit opens
    assert await served_by(router, "s1") == "b"
    entry = router.log_entries()[-1]
    assert entry["affinity"] == {"pin": "moved", "target": "b/model-b", "from": "a/model-a", "reason": "circuit open"}


@pytest.mark.gen_test
async def test_a_stream_moves_off_a_pinned_target_that_went_away(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(every_model_to(
        tmp_path, {"a": provider("anthropic", a.url), "b": provider("anthropic", b.url)}, ["a/model-a", "b/model-b"],
    ))
    assert await served_by(router, "s1") == "a"
    await a.stop()  # nothing listens there any more: connections are refused
    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True), headers={SESSION: "s1"})
    assert response.code == 200 and b"message_stop" in raw
    assert response.headers["x-tornrouter-provider"] == "b"
    affinity = router.log_entries()[-1]["affinity"]
    assert affinity["pin"] == "moved" and affinity["target"] == "b/model-b" and affinity["from"] == "a/model-a"
    assert affinity["reason"].startswith("provider 'a': request failed")


@pytest.mark.gen_test
async def test_a_body_field_names_the_session(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    config = balanced(tmp_path, a, b)
    config["router"]["sessions"] = {"header": None, "body_field": "metadata.user_id"}
    router = start_router(config)
    for session in ("user-1", "user-2", "user-3", "user-4"):
        served = [await served_by(router, None, body=message("m", metadata={"user_id": session})) for _ in range(4)]
        assert len(set(served)) == 1
    # the header is not read when not configured
    headers = {SESSION: "ignored"}
    assert (await router.post(ANTHROPIC, message("m"), headers=headers)).code == 200
    assert router.log_entries()[-1]["session"] is None
    assert router.log_entries()[0]["session"] == "user-1"


@pytest.mark.gen_test
async def test_prompt_cache_key_names_an_openai_clients_session(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    config = every_model_to(tmp_path, {"a": provider("openai", a.url), "b": provider("openai", b.url)},
                            ["a/model-a", "b/model-b"], strategy="loadbalance")
    config["router"]["sessions"] = {"body_field": "prompt_cache_key"}
    router = start_router(config)
    for key in ("k1", "k2", "k3", "k4"):
        served = {await served_by(router, None, OPENAI, body=chat("m", prompt_cache_key=key)) for _ in range(4)}
        assert len(served) == 1
    assert {r.body["prompt_cache_key"] for r in a.requests + b.requests} == {"k1", "k2", "k3", "k4"}  # relayed as ever


@pytest.mark.gen_test
async def test_a_route_may_opt_out(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(balanced(tmp_path, a, b, sticky=False))
    served = [await served_by(router, "s1") for _ in range(24)]
    assert set(served) == {"a", "b"}
    assert all(e["affinity"] is None and e["session"] == "s1" for e in router.log_entries())


@pytest.mark.gen_test
async def test_count_tokens_asks_the_sessions_target_and_pins_nothing(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(balanced(tmp_path, a, b))
    counts = [await router.post("/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                                headers={SESSION: "s1"}) for _ in range(20)]
    assert {r.headers["x-tornrouter-provider"] for r in counts} == {"a", "b"}  # no pin yet: balanced
    first = await served_by(router, "s1")
    counts = [await router.post("/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                                headers={SESSION: "s1"}) for _ in range(6)]
    assert {r.headers["x-tornrouter-provider"] for r in counts} == {first}
    assert router.log_entries()[-1]["affinity"] == {"pin": None, "target": f"{first}/model-{first}"}


@pytest.mark.gen_test
async def test_concurrent_first_requests_of_a_session_end_on_one_target(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    router = start_router(balanced(tmp_path, a, b))
    first = await asyncio.gather(*(served_by(router, "s1") for _ in range(8)))
    later = [await served_by(router, "s1") for _ in range(4)]
    assert len(set(later)) == 1 and later[0] in first  # the first pin written wins; the rest follow it
    pins = Counter(e["affinity"]["pin"] for e in router.log_entries()[:8])
    assert pins["new"] >= 1 and json.dumps(router.log_entries()).count('"moved"') == 0


def test_session_settings_are_checked_with_their_paths():
    from tornrouter.config import parse_config
    from tornrouter.errors import ConfigError

    config = {
        "providers": {"e": {"kind": "echo"}},
        "router": {"default": {"to": ["e", "e"], "sticky": "sometimes"},
                   "sessions": {"header": "X Session", "body_field": "metadata..user_id", "ttl_s": 0}},
        "keys": [{"name": "k", "key": "secret-key", "count_tokens_rpm": 0}],
    }
    with pytest.raises(ConfigError) as error:
        parse_config(config, environ={})
    assert sorted(error.value.problems) == [
        "keys.0.count_tokens_rpm: Must be greater than or equal to 1.",
        "router.default.sticky: Not a valid boolean.",
        "router.sessions.body_field: expected a dotted path: metadata.user_id",
        "router.sessions.header: not a header name",
        "router.sessions.ttl_s: Must be greater than 0.",
    ]
