"""Shadow traffic (``tornrouter/mirror``): a route's sampled requests sent again
to a mirror target once the client has its answer, with a ``type: mirror``
record of each in the request log and on the dashboard bus.

The primary and the mirror target are separate fake upstreams on loopback, so
each test sees what each was sent; a mirror that stalls is a reply held by a
gate the test opens (or never does)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from typing import Any

import pytest

from tests.configs import dead_url, provider
from tests.fake_upstream import Reply, answer, openai_completion
from tests.processes import DEADLINE_S, read_log
from tests.test_metrics import scrape, value
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES, body_for, chat
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError
from tornrouter.mirror import sampled
from tornrouter.mirror.shadow import CANCELLED

# The client model each API's route takes, and the provider it goes to.
MODEL = {OPENAI: "gpt-4o", ANTHROPIC: "claude-sonnet-4-5", RESPONSES: "resp-gpt-5"}
TEAM_KEY = "tr-team-SECRET-77aa"


def mirrored(primary_url: str, mirror_url: str, log_path: str, *, mirror_kind: str = "anthropic",
             to: str = "shadow/mirror-model", **mirror: Any) -> dict[str, Any]:
    """Each API's models to a provider of that API on ``primary_url``, every
    route mirrored (``sample`` 1 unless told) to ``to`` on ``mirror_url``."""
    spec = {"to": to, "sample": 1.0, **mirror}
    return {
        "server": {"dashboard": True},
        "log": {"requests": log_path},
        "providers": {
            "oai": provider("openai", primary_url),
            "ant": provider("anthropic", primary_url),
            "oresp": provider("openai-responses", primary_url),
            "shadow": provider(mirror_kind, mirror_url),
        },
        "router": {"routes": [
            {"model": "gpt-*", "to": "oai", "mirror": spec},
            {"model": "claude-*", "to": "ant", "mirror": spec},
            {"model": "resp-*", "to": "oresp/gpt-5", "mirror": spec},
        ]},
        "prices": {
            "oai/gpt-4o": {"input": 2.0, "output": 4.0},
            "shadow/mirror-model": {"input": 1.0, "output": 2.0},
        },
    }


async def records(router, count: int = 1) -> list[dict[str, Any]]:
    """The mirror records, once there are ``count`` of them."""
    return await poll(lambda: len(r := router.mirror_records()) >= count and r, f"{count} mirror record(s)")


def saying(text: str | None, calls: list[tuple[str, str, str]] | None = None):
    """A fake upstream's chooser: every answer ``text`` (and ``calls``), streamed when asked."""
    return lambda kind, body: answer(kind, body, text, calls or [])


async def health(router) -> dict[str, Any]:
    return json.loads((await router.get("/health?verbose=1")).body)


# --- which requests ---------------------------------------------------------------------------


def test_the_sample_is_decided_by_the_request_id():
    ids = [f"req-{number}" for number in range(4000)]
    assert all(sampled(i, 1.0) for i in ids)
    assert not any(sampled(i, 1e-9) for i in ids)
    rate = sum(sampled(i, 0.25) for i in ids) / len(ids)
    assert 0.2 < rate < 0.3
    # the same id, the same draw: a replay of the log mirrors the same requests
    assert [sampled(i, 0.25) for i in ids] == [sampled(i, 0.25) for i in ids]
    # and a draw below the rate is sampled at every higher rate
    assert all(sampled(i, 0.5) for i in ids if sampled(i, 0.25))


@pytest.mark.gen_test
async def test_a_tiny_sample_mirrors_nothing(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl"), sample=1e-9))
    for _ in range(5):
        assert (await router.post(OPENAI, chat("gpt-4o"))).code == 200
    # the mirror is decided in the same on_finish that writes the entry
    await poll(lambda: len(router.log_entries()) == 5, "5 entries")
    assert shadow.served == 0 and router.mirror_records() == []
    assert (await health(router))["mirrors"][0]["mirrored"] == 0


# --- the record ---------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_mirrored_request_is_recorded_after_its_entry_and_published(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl")))
    feed = router.runtime.events.subscribe()
    response = await router.post(OPENAI, chat("gpt-4o", "what is shadow traffic?"))
    assert response.code == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "Hello from the fake OpenAI upstream."

    (record,) = await records(router)
    request_id = response.headers["x-request-id"]
    assert record["type"] == "mirror" and record["id"] == request_id
    assert (record["route"], record["pattern"], record["target"]) == (0, "gpt-*", "shadow/mirror-model")
    assert (record["status"], record["error"]) == (200, None)
    assert record["latency_ms"] >= 0
    # the fake Anthropic upstream: 10 input tokens, 2 read from the cache, 8 output
    assert record["usage"] == {"input_tokens": 10, "output_tokens": 8, "cache_read_tokens": 2}
    assert record["cost_usd"] == pytest.approx((10 * 1.0 + 2 * 1.0 + 8 * 2.0) / 1e6)
    compared = record["compare"]
    assert compared["exact"] is False and 0.5 < compared["similarity"] < 1  # "... OpenAI ..." and "... Anthropic ..."
    assert compared["same_tool_calls"] is True and compared["same_stop_reason"] is True
    assert set(record) == {"type", "ts_ms", "id", "route", "pattern", "target", "status", "error", "latency_ms",
                           "usage", "cost_usd", "compare"}

    # the mirror got the request translated to its API, for its model, whole
    (sent,) = shadow.requests
    assert sent.path == "/v1/messages" and sent.body["model"] == "mirror-model" and "stream" not in sent.body
    assert sent.body["messages"] == [{"role": "user", "content": "what is shadow traffic?"}]
    assert sent.headers["X-Api-Key"] == "sk-anthropic-SECRET"

    # the primary's entry first, its cost its own; both lines on the dashboard bus, in that order
    lines = router.log_lines()
    assert [line.get("type") for line in lines] == [None, "mirror"]
    assert lines[0]["id"] == request_id and lines[0]["cost_usd"] == pytest.approx((12 * 2.0 + 8 * 4.0) / 1e6)
    published = [json.loads(line) for line in await feed.next_batch(timeout=5)]
    if len(published) < 2:
        published += [json.loads(line) for line in await feed.next_batch(timeout=5)]
    assert published == lines

    samples = await scrape(router)
    labels = {"route": "0", "target": "shadow/mirror-model"}
    assert value(samples, "tornrouter_mirror_requests_total", outcome="answered", **labels) == 1
    assert value(samples, "tornrouter_mirror_cost_usd_total", **labels) == pytest.approx(record["cost_usd"])
    # the router's own request metrics count the client's request alone
    assert value(samples, "tornrouter_requests_total", endpoint=OPENAI, provider="oai", model="gpt-4o", status="200") == 1
    assert value(samples, "tornrouter_requests_total", endpoint=OPENAI, provider="shadow", model="mirror-model", status="200") == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES], ids=KIND.get)
async def test_each_api_whole_or_streamed_is_mirrored_whole(start_router, upstream, fakes, tmp_path, path, stream):
    shadow = fakes()
    upstream.chooser = shadow.chooser = saying("The very same words.")
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl")))
    body = body_for(path, MODEL[path], "mirror me", stream=stream)
    if stream:
        response, data = await router.post_stream(path, body)
        assert b"very " in data and b"words." in data
    else:
        response = await router.post(path, body)
        assert b"The very same words." in response.body
    assert response.code == 200

    (record,) = await records(router)
    assert record["id"] == response.headers["x-request-id"] and record["status"] == 200
    assert record["compare"] == {"exact": True, "similarity": 1.0, "same_tool_calls": True, "same_stop_reason": True}
    assert record["route"] == {OPENAI: 0, ANTHROPIC: 1, RESPONSES: 2}[path]
    (sent,) = shadow.requests
    assert "stream" not in sent.body and "stream_options" not in sent.body  # whole, even for a streamed client
    (entry,) = router.log_entries()
    assert entry["stream"] is stream and entry["response"]["content"][0]["text"] == "The very same words."


@pytest.mark.gen_test
async def test_a_streaming_openai_client_is_mirrored_to_openai_without_stream_options(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl"), mirror_kind="openai"))
    body = chat("gpt-4o", "hello", stream=True, stream_options={"include_usage": True})
    response, data = await router.post_stream(OPENAI, body)
    assert response.code == 200 and data.endswith(b"data: [DONE]\n\n")
    (record,) = await records(router)
    assert record["status"] == 200 and record["usage"]["output_tokens"] == 8
    (sent,) = shadow.requests
    assert sent.path == "/v1/chat/completions" and "stream" not in sent.body and "stream_options" not in sent.body
    # the primary streamed its canned answer (the user's words added), the mirror answered whole
    assert record["compare"]["exact"] is False and record["compare"]["same_stop_reason"] is True


@pytest.mark.gen_test
async def test_different_text_and_tool_calls_show_in_the_comparison(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl")))
    weather = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    async def compared(primary: Any, mirror: Any) -> dict[str, Any]:
        upstream.chooser, shadow.chooser = primary, mirror
        done = len(router.mirror_records())
        assert (await router.post(OPENAI, chat("gpt-4o", "weather?", tools=weather))).code == 200
        return (await records(router, done + 1))[-1]["compare"]

    paris = [("call_a", "get_weather", '{"city": "Paris", "unit": "C"}')]
    # the same call, its id and its arguments' spacing and order aside
    same = await compared(saying(None, paris), saying(None, [("toolu_b", "get_weather", '{"unit":"C","city":"Paris"}')]))
    assert same == {"exact": True, "similarity": 1.0, "same_tool_calls": True, "same_stop_reason": True}
    other_city = await compared(saying(None, paris), saying(None, [("toolu_b", "get_weather", '{"city": "Lyon", "unit": "C"}')]))
    assert other_city["same_tool_calls"] is False and other_city["same_stop_reason"] is True
    no_call = await compared(saying(None, paris), saying("It is sunny in Paris."))
    assert no_call["same_tool_calls"] is False and no_call["same_stop_reason"] is False  # tool_use / end_turn
    assert no_call["exact"] is False and no_call["similarity"] == 0.0
    other_words = await compared(saying("The capital of France is Paris."), saying("Bananas are yellow fruit."))
    close_words = await compared(saying("The capital of France is Paris."), saying("The capital of France is Paris!"))
    assert other_words["similarity"] < 0.5 < close_words["similarity"] < 1
    assert not other_words["exact"] and not close_words["exact"]


# --- never in the client's way -------------------------------------------------------------------


FIXED_ANSWER = {**openai_completion({"model": "gpt-4o"}), "created": 1767225600}
VARYING_HEADERS = {"X-Request-Id", "X-Tornrouter-Overhead-Ms", "Date"}


def client_view(response) -> tuple[int, bytes, dict[str, str]]:
    headers = {name: value for name, value in response.headers.get_all() if name not in VARYING_HEADERS}
    return response.code, response.body, headers


@pytest.mark.gen_test
async def test_a_stalled_mirror_neither_delays_nor_changes_the_answer_and_a_full_mirror_drops(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    stalled = asyncio.Event()
    shadow.then(Reply(gate=stalled))
    config = mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl"), max_concurrent=1)
    router = start_router(config)
    plain = start_router({**config, "router": {"routes": [{"model": "gpt-*", "to": "oai"}]}})
    upstream.then(*[Reply(body=FIXED_ANSWER)] * 3)

    reference = await plain.post(OPENAI, chat("gpt-4o"))
    first = await router.post(OPENAI, chat("gpt-4o"))
    await poll(lambda: shadow.served == 1, "the mirror to be sent")
    assert client_view(first) == client_view(reference)
    second = await router.post(OPENAI, chat("gpt-4o"))  # the mirror still stalled: this one's is dropped
    assert client_view(second) == client_view(reference)
    assert not stalled.is_set() and router.mirror_records() == []

    status = (await health(router))["mirrors"][0]
    assert status == {"route": 0, "pattern": "gpt-*", "to": "shadow/mirror-model", "sample": 1.0, "max_concurrent": 1,
                      "in_flight": 1, "mirrored": 1, "dropped": 1}
    samples = await scrape(router)
    assert value(samples, "tornrouter_mirror_requests_total", route="0", target="shadow/mirror-model", outcome="dropped") == 1

    stalled.set()
    (record,) = await records(router)
    assert record["id"] == first.headers["x-request-id"] and record["status"] == 200
    assert shadow.served == 1
    assert (await health(router))["mirrors"][0]["in_flight"] == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("failure", ["status 500", "refused"])
async def test_a_failing_mirror_changes_nothing_for_the_client(start_router, upstream, fakes, tmp_path, failure):
    shadow = fakes()
    shadow.then(Reply(status=500, body={"type": "error", "error": {"type": "api_error", "message": "shadow is down"}}))
    url = shadow.url if failure == "status 500" else dead_url()
    config = mirrored(upstream.url, url, str(tmp_path / "log.jsonl"))
    router = start_router(config)
    plain = start_router({**config, "router": {"routes": [{"model": "gpt-*", "to": "oai"}]}})
    upstream.then(*[Reply(body=FIXED_ANSWER)] * 2)

    response = await router.post(OPENAI, chat("gpt-4o"))
    assert client_view(response) == client_view(await plain.post(OPENAI, chat("gpt-4o")))
    (record,) = await records(router)
    assert record["status"] == (500 if failure == "status 500" else 599)
    assert record["error"].startswith("provider 'shadow': ")
    assert record["usage"] is None and record["cost_usd"] is None and record["compare"] is None
    (entry,) = router.log_entries()
    assert entry["status"] == 200 and entry["error"] is None and [a["provider"] for a in entry["attempts"]] == ["oai"]
    samples = await scrape(router)
    assert value(samples, "tornrouter_mirror_requests_total", route="0", target="shadow/mirror-model", outcome="failed") == 1


@pytest.mark.gen_test
async def test_a_mirror_on_the_primarys_provider_tells_its_breaker_nothing(start_router, upstream, tmp_path):
    """The mirror target is the primary's own provider, another model, which
    fails: the provider's breaker (open after one failure) stays closed."""
    config = mirrored(upstream.url, upstream.url, str(tmp_path / "log.jsonl"), to="oai/mirror-model")
    config["providers"]["oai"]["breaker"] = {"failures": 1, "window_s": 60, "cooldown_s": 60}
    router = start_router(config)
    down = Reply(status=503, body={"error": {"message": "overloaded", "type": "server_error"}})
    upstream.chooser = lambda kind, body: down if body.get("model") == "mirror-model" else None

    for number in range(1, 3):
        assert (await router.post(OPENAI, chat("gpt-4o"))).code == 200
        assert (await records(router, number))[-1]["status"] == 503
    assert (await health(router))["providers"]["oai"]["breaker"]["state"] == "closed"
    assert [entry["attempts"][0]["status"] for entry in router.log_entries()] == [200, 200]


@pytest.mark.gen_test
async def test_a_mirror_counts_against_no_client_limit_or_budget(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    config = mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl"))
    # The primary free, the mirror dear: one mirror would spend the key's day at once.
    config["prices"] = {"oai/gpt-4o": {"input": 0.0, "output": 0.0},
                        "shadow/mirror-model": {"input": 1000.0, "output": 1000.0}}
    config["keys"] = [{"name": "team", "key_sha256": hashlib.sha256(TEAM_KEY.encode()).hexdigest(),
                       "rpm": 2, "budget_usd_per_day": 0.001}]
    router = start_router(config)
    headers = {"Authorization": f"Bearer {TEAM_KEY}"}

    for number in range(1, 3):
        assert (await router.post(OPENAI, chat("gpt-4o"), headers=headers)).code == 200
        assert (await records(router, number))[-1]["cost_usd"] == pytest.approx(20 * 1000.0 / 1e6)
        await router.runtime.access.drain()
    refused = await router.post(OPENAI, chat("gpt-4o"), headers=headers)
    assert refused.code == 429 and "2 requests per minute" in json.loads(refused.body)["error"]["message"]

    usage = json.loads((await router.client.fetch(router.url + "/v1/usage", headers=headers)).body)
    assert usage["keys"]["team"]["total"]["requests"] == 2 and usage["keys"]["team"]["total"]["cost_usd"] == 0
    assert [entry["cost_usd"] for entry in router.log_entries()] == [0.0, 0.0, None]
    samples = await scrape(router)
    assert value(samples, "tornrouter_mirror_cost_usd_total", route="0", target="shadow/mirror-model") == pytest.approx(0.04)
    assert value(samples, "tornrouter_cost_usd_total", provider="oai", model="gpt-4o", key="team") == 0


@pytest.mark.gen_test
async def test_only_answered_requests_are_mirrored(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    config = mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl"))
    # an End hook that breaks the answer's usage once a stream has been sent
    config["plugins"] = [{"use": "tests.plugins_for_tests.Corrupt", "models": ["claude-*"],
                          "settings": {"hook": "on_end", "what": "usage"}}]
    router = start_router(config)
    upstream.then(Reply(status=400, body={"error": {"message": "bad", "type": "invalid_request_error"}}))
    assert (await router.post(OPENAI, chat("gpt-4o"))).code == 400
    assert (await router.post(OPENAI, chat("unrouted-model"))).code == 400  # no route, no mirror
    broken, _ = await router.post_stream(ANTHROPIC, body_for(ANTHROPIC, "claude-sonnet-4-5", stream=True))
    assert broken.code == 200
    entries = await poll(lambda: len(e := router.log_entries()) == 3 and e, "3 entries")
    assert entries[-1]["error"].startswith("plugin 'corrupt' failed")
    assert shadow.served == 0 and router.mirror_records() == []


@pytest.mark.gen_test
async def test_closing_cancels_the_mirrors_still_running_and_records_them(start_router, upstream, fakes, tmp_path):
    shadow = fakes()
    shadow.then(Reply(gate=asyncio.Event()))  # never answers
    router = start_router(mirrored(upstream.url, shadow.url, str(tmp_path / "log.jsonl")))
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 200
    await poll(lambda: shadow.served == 1, "the mirror to be sent")
    assert len(router.runtime.mirrors.tasks) == 1

    await router.runtime.mirrors.aclose()  # as Runtime.aclose does first, at a stop or after a reload
    assert router.runtime.mirrors.tasks == set()
    (record,) = router.mirror_records()
    assert record["id"] == response.headers["x-request-id"]
    assert (record["status"], record["error"], record["compare"]) == (None, CANCELLED, None)
    assert (await health(router))["mirrors"][0]["in_flight"] == 0


# --- the config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mirror, problem", [
    ({"to": "nowhere/m", "sample": 0.1}, "router.routes.0.mirror.to: unknown provider 'nowhere'"),
    ({"to": "echo", "sample": 0}, "router.routes.0.mirror.sample: must be above 0 and at most 1 (got 0.0)"),
    ({"to": "echo", "sample": 1.5}, "router.routes.0.mirror.sample: must be above 0 and at most 1 (got 1.5)"),
    ({"to": "echo"}, "router.routes.0.mirror.sample: Missing data for required field."),
    ({"to": "echo", "sample": 0.1, "max_concurrent": 0}, "router.routes.0.mirror.max_concurrent: Must be greater than or equal to 1."),
    ({"to": "echo", "sample": 0.1, "queue": 9}, "router.routes.0.mirror.queue: Unknown field."),
    ({"to": "two words", "sample": 0.1}, "router.routes.0.mirror.to: expected 'provider' or 'provider/model'"),
])
def test_a_bad_mirror_is_refused_naming_the_field(mirror, problem):
    raw = {"providers": {"echo": {"kind": "echo"}}, "router": {"routes": [{"model": "*", "to": "echo", "mirror": mirror}]}}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, environ={})
    assert problem in str(refused.value)


def test_a_mirror_is_optional_and_max_concurrent_defaults_to_four():
    raw = {"providers": {"echo": {"kind": "echo"}},
           "router": {"routes": [{"model": "a", "to": "echo", "mirror": {"to": "echo/b", "sample": 0.5}}, {"to": "echo"}]}}
    first, second = parse_config(raw, environ={}).router.routes
    assert (first.mirror.to.provider, first.mirror.to.model, first.mirror.sample, first.mirror.max_concurrent) == ("echo", "b", 0.5, 4)
    assert second.mirror is None


async def spawn_mirrored(spawn, upstream, shadow, log_path):
    """A router process mirroring ``upstream``'s route to ``shadow``, logging to ``log_path``."""
    config = mirrored(upstream.url, shadow.url, str(log_path))
    config["server"] = {"host": "127.0.0.1", "port": 0}
    conf = log_path.parent / "router.yaml"
    conf.write_text(json.dumps(config))
    return await spawn(conf).start()


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_stops_a_stalled_mirror_and_the_router_exits_cleanly(spawn, upstream, fakes, tmp_path):
    shadow = fakes()
    shadow.then(Reply(delay=300))  # longer than the test's deadline for the exit
    log_path = tmp_path / "requests.jsonl"
    router = await spawn_mirrored(spawn, upstream, shadow, log_path)
    response = await router.post(chat("gpt-4o"))
    assert response.code == 200
    await poll(lambda: shadow.served == 1, "the mirror to be sent", timeout=DEADLINE_S)

    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    assert "ERROR" not in router.output() and "Task was destroyed" not in router.output(), router.output()
    entry, record = read_log(log_path)
    assert entry["id"] == record["id"] == response.headers["x-request-id"]
    assert (record["type"], record["status"], record["error"]) == ("mirror", None, CANCELLED)


@pytest.mark.gen_test(timeout=90)
async def test_a_reload_stops_the_old_runtimes_mirrors_and_the_new_one_mirrors_on(spawn, upstream, fakes, tmp_path):
    shadow = fakes()
    shadow.then(Reply(delay=300))  # the first mirror would outlive the test; the next answer at once
    log_path = tmp_path / "requests.jsonl"
    router = await spawn_mirrored(spawn, upstream, shadow, log_path)
    before = await router.post(chat("gpt-4o", "before"))
    await poll(lambda: shadow.served == 1, "the first mirror to be sent", timeout=DEADLINE_S)

    router.send(signal.SIGHUP)
    await router.wait_for("config reloaded")
    # the old runtime has no request in flight: it closes, stopping its mirror
    await poll(lambda: len(read_log(log_path)) == 2, "the stopped mirror's record", timeout=DEADLINE_S)
    after = await router.post(chat("gpt-4o", "after"))
    await poll(lambda: len(read_log(log_path)) == 4, "the new mirror's record", timeout=DEADLINE_S)
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    assert "ERROR" not in router.output(), router.output()

    lines = read_log(log_path)
    records = {line["id"]: line for line in lines if line.get("type") == "mirror"}
    assert records[before.headers["x-request-id"]]["error"] == CANCELLED
    assert records[after.headers["x-request-id"]]["status"] == 200
