"""The response cache end to end, in memory: a router on loopback in front of
the fake upstream, driven by the official SDKs and raw HTTP.

What a user sees: an identical request answered without an upstream call, as
a JSON answer or a valid stream of either API, with its usage; the headers
that say so; what is never stored; one tenant's entries kept from another's;
identical requests in flight at once making one upstream call; and a hit
still running the plugins, counted by the limits, free against budgets, and
shown by the log, ``/v1/usage`` and ``/metrics``.  Every replayed stream goes
through ``validate_stream``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.access_support import TEAM_A, TEAM_B, bearer, error_of
from tests.answers import answer_text, streamed_text
from tests.cache_support import ask, cached, many_client, outcome, sdk_answer, streamed
from tests.fake_upstream import OPENAI_TEXT, Reply, anthropic_message, openai_completion, scripted_sse
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI
from tornrouter.validate_stream import validate

# client endpoint, model, the upstream kind the base config routes it to
PATHS = [
    pytest.param(OPENAI, "gpt-4o", id="openai<-openai"),
    pytest.param(ANTHROPIC, "claude-x", id="anthropic<-anthropic"),
    pytest.param(OPENAI, "to-anthropic", id="openai<-anthropic"),
    pytest.param(ANTHROPIC, "to-openai", id="anthropic<-openai"),
]
UPSTREAM_KIND = {"gpt-4o": "openai", "claude-x": "anthropic", "to-anthropic": "anthropic", "to-openai": "openai"}


@pytest.fixture
def cached_router(start_router, upstream, tmp_path):
    """``cached_router(**rule)``: the base routes, each with ``cache: {ttl_s: 600, **rule}``."""
    return lambda **rule: start_router(cached(upstream.url, str(tmp_path / "requests.jsonl"), **rule))


async def read_valid_stream(router, path: str, body: dict[str, Any], headers: dict[str, str] | None = None):
    """A stream's response and raw bytes, checked against the rules of the endpoint's API."""
    client = many_client()
    chunks: list[bytes] = []
    try:
        response = await client.fetch(
            router.url + path, method="POST", body=json.dumps(body), raise_error=False, request_timeout=20,
            headers={"Content-Type": "application/json", **(headers or {})}, streaming_callback=chunks.append,
        )
    finally:
        client.close()
    raw = b"".join(chunks)
    assert response.code == 200, raw
    assert validate(raw, KIND[path]) == [], raw
    return response, raw


async def entries(router, count: int) -> list[dict[str, Any]]:
    return await poll(lambda: (lambda e: e if len(e) >= count else None)(router.log_entries()), f"{count} log entries")


# --- 1. hits on every path, both SDKs, streamed and not ---------------------------------


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("first", ["json", "stream"])
@pytest.mark.parametrize("path,model", PATHS)
async def test_a_stored_answer_is_served_to_both_kinds_of_request_with_the_sdks(cached_router, upstream, path, model, first):
    router = cached_router()
    original = await sdk_answer(router.url, path, model, stream=first == "stream")
    assert original.headers["x-tornrouter-cache"] == ("store" if first == "json" else "miss")
    assert original.text and original.stop in ("stop", "end_turn") and original.tokens[0] > 0
    await entries(router, 1)  # a stream is stored as it ends

    for stream in (False, True):
        hit = await sdk_answer(router.url, path, model, stream=stream)
        assert hit.same_answer(original), (hit.__dict__, original.__dict__)
        assert hit.headers["x-tornrouter-cache"] == "hit" and int(hit.headers["age"]) >= 0
        assert hit.headers["x-tornrouter-provider"] == ("oai" if UPSTREAM_KIND[model] == "openai" else "ant")
    response, raw = await read_valid_stream(router, path, streamed(path, ask(path, model)))
    assert outcome(response) == "hit" and streamed_text(path, raw) == original.text
    response = await router.post(path, ask(path, model))
    assert outcome(response) == "hit" and answer_text(path, response) == original.text
    assert len(upstream.requests) == 1

    logged = await entries(router, 5)
    assert [e["cache"]["outcome"] for e in logged] == ["store"] + ["hit"] * 4
    assert len({e["cache"]["key"] for e in logged}) == 1
    for entry in logged[1:]:
        assert entry["attempts"] == [] and entry["status"] == 200 and entry["usage"] == logged[0]["usage"]


@pytest.mark.gen_test
async def test_a_hit_keeps_what_the_answer_carried(cached_router, upstream):
    """Usage (cached prompt tokens included), stop reason, ids and the
    upstream's own fields come back as the upstream sent them."""
    router = cached_router()
    first = await router.post(OPENAI, ask(OPENAI, "gpt-4o"))
    again = await router.post(OPENAI, ask(OPENAI, "gpt-4o"))
    assert outcome(again) == "hit"
    assert json.loads(again.body) == json.loads(first.body)
    answer = json.loads(again.body)
    assert answer["usage"]["prompt_tokens_details"]["cached_tokens"] == 2 and answer["system_fingerprint"] == "fp_fake"


# --- 2. headers and the client's directives ---------------------------------------------------


@pytest.mark.gen_test
async def test_headers_say_store_then_hit_with_the_entry_age(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "gpt-4o")
    stored = await router.post(OPENAI, body)
    assert (outcome(stored), stored.headers.get("Age")) == ("store", None)
    hit = await router.post(OPENAI, body)
    assert (outcome(hit), hit.headers["Age"]) == ("hit", "0")
    cache = router.runtime.cache
    real = cache.clock
    cache.clock = lambda: real() + 42.4
    assert (await router.post(OPENAI, body)).headers["Age"] == "42"
    cache.clock = lambda: real() + 601  # past ttl_s
    expired = await router.post(OPENAI, body)
    assert outcome(expired) == "store" and len(upstream.requests) == 2


@pytest.mark.gen_test
async def test_no_cache_refreshes_the_entry(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "gpt-4o")
    await router.post(OPENAI, body)
    upstream.then(Reply(body=openai_completion(body, text="A fresher answer.")))
    fresh = await router.post(OPENAI, body, headers={"Cache-Control": "no-cache"})
    assert outcome(fresh) == "store" and answer_text(OPENAI, fresh) == "A fresher answer."
    hit = await router.post(OPENAI, body)
    assert outcome(hit) == "hit" and answer_text(OPENAI, hit) == "A fresher answer."
    assert len(upstream.requests) == 2


@pytest.mark.gen_test
async def test_no_store_neither_reads_nor_writes(cached_router, upstream):
    router = cached_router()
    body = ask(ANTHROPIC, "claude-x")
    first = await router.post(ANTHROPIC, body, headers={"Cache-Control": "no-store"})
    assert outcome(first) == "bypass"
    assert outcome(await router.post(ANTHROPIC, body)) == "store"  # nothing was stored before
    upstream.then(Reply(body=anthropic_message(body, text="Not to be kept.")))
    bypassed = await router.post(ANTHROPIC, body, headers={"Cache-Control": "no-store"})
    assert outcome(bypassed) == "bypass" and answer_text(ANTHROPIC, bypassed) == "Not to be kept."
    hit = await router.post(ANTHROPIC, body)
    assert outcome(hit) == "hit" and answer_text(ANTHROPIC, hit) != "Not to be kept."
    assert len(upstream.requests) == 3
    reasons = [e["cache"].get("reason") for e in await entries(router, 4)]
    assert reasons[0] == reasons[2] == "Cache-Control: no-store"


@pytest.mark.gen_test
async def test_max_age_refuses_an_older_entry(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "to-anthropic")
    await router.post(OPENAI, body)
    cache = router.runtime.cache
    real = cache.clock
    cache.clock = lambda: real() + 100
    young = await router.post(OPENAI, body, headers={"Cache-Control": "max-age=3600"})
    assert (outcome(young), young.headers["Age"]) == ("hit", "100")
    refreshed = await router.post(OPENAI, body, headers={"Cache-Control": "max-age=50"})
    assert outcome(refreshed) == "store" and len(upstream.requests) == 2
    again = await router.post(OPENAI, body, headers={"Cache-Control": "max-age=50"})
    assert (outcome(again), again.headers["Age"]) == ("hit", "0")


@pytest.mark.gen_test
async def test_a_namespace_partitions_the_cache(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "gpt-4o")
    run_a = {"x-tornrouter-cache-namespace": "eval-run-a"}
    assert outcome(await router.post(OPENAI, body, headers=run_a)) == "store"
    assert outcome(await router.post(OPENAI, body, headers={"x-tornrouter-cache-namespace": "eval-run-b"})) == "store"
    assert outcome(await router.post(OPENAI, body)) == "store"
    assert outcome(await router.post(OPENAI, body, headers=run_a)) == "hit"
    assert len(upstream.requests) == 3


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_a_directive_that_cannot_be_read_is_a_400_naming_the_header(cached_router, upstream, path):
    router = cached_router()
    bad = await router.post(path, ask(path, "gpt-4o"), headers={"Cache-Control": "max-age=soon"})
    assert bad.code == 400
    assert error_of(path, bad.body)["message"] == "Cache-Control: max-age must be a whole number of seconds, got 'soon'"
    spaced = await router.post(path, ask(path, "gpt-4o"), headers={"x-tornrouter-cache-namespace": "two words"})
    assert spaced.code == 400 and error_of(path, spaced.body)["message"].startswith("x-tornrouter-cache-namespace: ")
    assert upstream.requests == []
    assert [e["status"] for e in await entries(router, 2)] == [400, 400]


@pytest.mark.gen_test
async def test_the_cache_is_off_unless_a_route_or_a_model_enables_it(start_router, upstream, tmp_path):
    router = start_router()  # the base config: no cache: anywhere
    for _ in range(2):
        response = await router.post(OPENAI, ask(OPENAI, "gpt-4o"), headers={"Cache-Control": "max-age=soon"})
        assert response.code == 200 and "x-tornrouter-cache" not in response.headers
    assert len(upstream.requests) == 2 and router.runtime.cache.backend is None
    assert all(e["cache"] is None for e in await entries(router, 2))

    config = cached(upstream.url, str(tmp_path / "models.jsonl"))
    for route in config["router"]["routes"]:
        del route["cache"]
    config["router"]["routes"][0]["cache"] = {"enabled": False}  # gpt-*: off, whatever the globs say
    config["cache"] = {"models": [{"model": "claude-*"}, {"model": "*", "ttl_s": 60}]}
    by_model = start_router(config)
    assert [outcome(await by_model.post(ANTHROPIC, ask(ANTHROPIC, "claude-x"))) for _ in range(2)] == ["store", "hit"]
    assert [outcome(await by_model.post(OPENAI, ask(OPENAI, "gpt-4o"))) for _ in range(2)] == [None, None]
    assert [outcome(await by_model.post(OPENAI, ask(OPENAI, "to-anthropic"))) for _ in range(2)] == ["store", "hit"]


# --- 3. what is never stored --------------------------------------------------------------------


def length_stop(body: dict[str, Any]) -> Reply:
    completion = openai_completion(body)
    completion["choices"][0]["finish_reason"] = "length"
    return Reply(body=completion)


def max_tokens_stop(body: dict[str, Any]) -> Reply:
    return Reply(body={**anthropic_message(body), "stop_reason": "max_tokens"})


def tool_call(body: dict[str, Any]) -> Reply:
    completion = openai_completion(body)
    completion["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]}
    completion["choices"][0]["finish_reason"] = "tool_calls"
    return Reply(body=completion)


def cut_stream(body: dict[str, Any]) -> Reply:
    return Reply(sse=scripted_sse("anthropic", "an answer cut short")[:5], drop=True)


NEVER_STORED = [
    # name, endpoint, model, stream, the first reply, the reason logged
    ("an upstream error", OPENAI, "gpt-4o", False, lambda b: Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}), None),
    ("a length stop", OPENAI, "gpt-4o", False, length_stop, "the answer stopped at its token limit (max_tokens / length)"),
    ("a max_tokens stop", ANTHROPIC, "claude-x", False, max_tokens_stop, "the answer stopped at its token limit (max_tokens / length)"),
    ("tool calls", OPENAI, "gpt-4o", False, tool_call, "the answer calls tools (cache_tool_calls is false)"),
    ("a truncated stream", ANTHROPIC, "claude-x", True, cut_stream, "the stream ended with an error"),
    ("a stream without its usage", OPENAI, "gpt-4o", True, lambda b: Reply(sse=scripted_sse("openai", "no usage", usage=False)),
     "the answer's token usage is unknown (an OpenAI stream without stream_options.include_usage)"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("name,path,model,stream,reply,reason", NEVER_STORED, ids=[row[0] for row in NEVER_STORED])
async def test_answers_that_are_never_stored(cached_router, upstream, name, path, model, stream, reply, reason):
    router = cached_router()
    body = ask(path, model)
    if stream:
        body = {**body, "stream": True}  # as sent: an OpenAI client that did not ask for the usage
    upstream.then(reply(body))
    first = await (router.post_stream(path, body) if stream else router.post(path, body))
    first = first[0] if stream else first
    assert outcome(first) == "miss"
    second = await router.post(path, ask(path, model))
    assert outcome(second) == "store" and second.code == 200
    assert len(upstream.requests) == 2
    (logged, _) = await entries(router, 2)
    assert logged["cache"]["outcome"] == "miss" and logged["cache"].get("reason") == reason


@pytest.mark.gen_test
async def test_tool_calls_are_stored_when_the_rule_says_so(cached_router, upstream):
    router = cached_router(cache_tool_calls=True)
    body = ask(OPENAI, "gpt-4o")
    upstream.then(tool_call(body))
    assert outcome(await router.post(OPENAI, body)) == "store"
    hit = await router.post(OPENAI, body)
    assert outcome(hit) == "hit"
    assert json.loads(hit.body)["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"


@pytest.mark.gen_test
async def test_sampling_requests_are_cached_only_when_the_rule_says_so(cached_router, upstream):
    router = cached_router()
    hot = ask(OPENAI, "gpt-4o", temperature=0.7)
    unset = {k: v for k, v in hot.items() if k != "temperature"}
    assert [outcome(await router.post(OPENAI, b)) for b in (hot, hot, unset, unset)] == ["bypass"] * 4
    assert len(upstream.requests) == 4
    reasons = [e["cache"]["reason"] for e in await entries(router, 4)]
    assert reasons[0] == "temperature 0.7 > 0 (cache nondeterministic is false)"
    assert reasons[2].startswith("no temperature: the model samples at its default")

    sampling = cached_router(nondeterministic=True)
    assert [outcome(await sampling.post(OPENAI, b)) for b in (hot, hot, unset, unset)] == ["store", "hit", "store", "hit"]


# --- 4. tenants --------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("shared", [False, True])
async def test_tenants_share_entries_only_when_configured(start_router, upstream, tmp_path, shared):
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"), shared=shared)
    config["keys"] = [{"name": "team-a", "key": TEAM_A}, {"name": "team-b", "key": TEAM_B}]
    router = start_router(config)
    body = ask(OPENAI, "gpt-4o")
    assert outcome(await router.post(OPENAI, body, headers=bearer(TEAM_A))) == "store"
    other = await router.post(OPENAI, body, headers=bearer(TEAM_B))
    assert outcome(other) == ("hit" if shared else "store")
    assert outcome(await router.post(OPENAI, body, headers=bearer(TEAM_A))) == "hit"
    assert len(upstream.requests) == (1 if shared else 2)


# --- 5. single flight ------------------------------------------------------------------------


async def gated_burst(router, upstream, held: list[Reply], requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, bytes]]:
    """Send ``requests`` at once; the upstream holds its first ``len(held)``
    answers (``held``) until they are all in and every other request waits
    for one of them.  The responses and their bodies, in order."""
    gate = asyncio.Event()
    for reply in held:
        reply.gate = gate
    upstream.then(*held)
    client = many_client()

    async def send(path: str, body: dict[str, Any]) -> tuple[Any, bytes]:
        chunks: list[bytes] = []
        response = await client.fetch(router.url + path, method="POST", body=json.dumps(body), raise_error=False,
                                      request_timeout=30, headers={"Content-Type": "application/json"},
                                      streaming_callback=chunks.append)
        return response, b"".join(chunks)

    tasks = [asyncio.ensure_future(send(path, body)) for path, body in requests]
    waiting = router.runtime.cache.flights.waiting
    try:
        await poll(lambda: len(upstream.requests) == len(held) and waiting() == len(requests) - len(held),
                   "the held requests to reach the upstream and the others to wait for them")
    finally:
        gate.set()
    try:
        return await asyncio.gather(*tasks)
    finally:
        client.close()


@pytest.mark.gen_test(timeout=30)
async def test_twenty_identical_requests_at_once_make_one_upstream_call(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "gpt-4o")
    results = await gated_burst(router, upstream, [Reply()], [(OPENAI, body)] * 20)
    assert len(upstream.requests) == 1
    assert [r.code for r, _ in results] == [200] * 20
    assert {json.loads(raw)["choices"][0]["message"]["content"] for _, raw in results} == {OPENAI_TEXT}
    assert sorted(outcome(r) for r, _ in results) == ["hit"] * 19 + ["store"]
    logged = await entries(router, 20)
    assert sum(1 for e in logged if e["cache"].get("coalesced")) == 19


@pytest.mark.gen_test(timeout=30)
async def test_streams_and_json_in_one_flight_each_get_their_own_answer(cached_router, upstream):
    """Ten streams and ten JSON requests, identical but for ``stream``, through
    a translation (an Anthropic client, an OpenAI upstream): one upstream call,
    and each stream its own valid replay."""
    router = cached_router()
    body = ask(ANTHROPIC, "to-openai")
    requests = [(ANTHROPIC, {**body, "stream": True} if i % 2 else body) for i in range(20)]
    results = await gated_burst(router, upstream, [Reply()], requests)
    assert len(upstream.requests) == 1
    texts = set()
    for (_, sent), (response, raw) in zip(requests, results):
        assert response.code == 200, raw
        if sent.get("stream"):
            assert validate(raw, "anthropic") == [], raw
            texts.add(streamed_text(ANTHROPIC, raw))
        else:
            texts.add(json.loads(raw)["content"][0]["text"])
    assert texts == {OPENAI_TEXT}
    assert sorted(outcome(r) for r, _ in results).count("hit") == 19


@pytest.mark.gen_test(timeout=30)
async def test_when_the_first_request_fails_the_others_go_upstream_each(cached_router, upstream):
    router = cached_router()
    body = ask(ANTHROPIC, "claude-x")
    failing = Reply(status=500, body={"type": "error", "error": {"type": "api_error", "message": "boom"}})
    results = await gated_burst(router, upstream, [failing], [(ANTHROPIC, body)] * 8)
    codes = sorted(r.code for r, _ in results)
    assert codes == [200] * 7 + [500]  # the upstream's own error, relayed to a client of its API
    assert len(upstream.requests) == 8  # never one after another: all at once, as without a cache


@pytest.mark.gen_test(timeout=30)
async def test_coalescing_can_be_turned_off(cached_router, upstream):
    """Five identical requests at once each go upstream (the upstream holds
    all five: none can have stored its answer before another looked)."""
    router = cached_router(coalesce=False)
    body = ask(OPENAI, "gpt-4o")
    results = await gated_burst(router, upstream, [Reply() for _ in range(5)], [(OPENAI, body)] * 5)
    assert [r.code for r, _ in results] == [200] * 5
    assert len(upstream.requests) == 5
    assert sorted(outcome(r) for r, _ in results) == ["store"] * 5


# --- 6. the pipeline around a hit ------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_hit_runs_the_late_plugins_on_the_answer_as_stored(start_router, upstream, tmp_path):
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"))
    config["plugins"] = [
        {"use": "examples.plugins.Footer", "settings": {"text": " -- via tornrouter"}},
        {"use": "tests.plugins_for_tests.Recorder", "settings": {"name": "rec"}},
    ]
    router = start_router(config)
    body = ask(ANTHROPIC, "claude-x")
    answers = [await router.post(ANTHROPIC, body) for _ in range(2)]
    assert [outcome(a) for a in answers] == ["store", "hit"]
    for answer in answers:  # the footer once: the entry holds the answer as it was before PostResponse
        assert answer_text(ANTHROPIC, answer).endswith("upstream. -- via tornrouter")
        assert json.loads(answer.body)["calls"] == ["rec:on_start", "rec:pre_request", "rec:post_response", "rec:on_end"]
    logged = await entries(router, 2)
    assert logged[1]["plugins"] == logged[0]["plugins"] == ["footer"]
    response, _ = await read_valid_stream(router, ANTHROPIC, {**body, "stream": True})
    assert outcome(response) == "hit"
    stream_entry = (await entries(router, 3))[2]
    assert stream_entry["response"]["content"][0]["text"].endswith("-- via tornrouter")  # the log sees what the hooks made


@pytest.mark.gen_test
async def test_a_hit_counts_against_rpm(start_router, upstream, tmp_path):
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"))
    config["keys"] = [{"name": "team-a", "key": TEAM_A, "rpm": 2}]
    router = start_router(config)
    codes = [(await router.post(OPENAI, ask(OPENAI, "gpt-4o"), headers=bearer(TEAM_A))).code for _ in range(3)]
    assert codes == [200, 200, 429]


@pytest.mark.gen_test
async def test_a_hit_counts_its_tokens_against_tpm(start_router, upstream, tmp_path):
    """The answer is 12 prompt and 8 completion tokens: with tpm 50, a miss and
    two hits fit (60 tokens counted once each has ended), a third hit does not."""
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"))
    config["keys"] = [{"name": "team-a", "key": TEAM_A, "tpm": 50}]
    router = start_router(config)
    codes = []
    for _ in range(4):
        response = await router.post(OPENAI, ask(OPENAI, "gpt-4o", "hi"), headers=bearer(TEAM_A))
        codes.append((response.code, outcome(response)))
    assert codes == [(200, "store"), (200, "hit"), (200, "hit"), (429, None)]


@pytest.mark.gen_test
async def test_a_hit_is_free_against_budgets_and_what_it_saved_is_recorded(start_router, upstream, tmp_path):
    """The fake upstream's gpt-4o answer costs 0.0001075 USD at the default
    prices: with a budget of 0.0002 a day, a second charge would spend it."""
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"))
    config["keys"] = [{"name": "team-a", "key": TEAM_A, "budget_usd_per_day": 0.0002}]
    router = start_router(config)
    answers = [await router.post(OPENAI, ask(OPENAI, "gpt-4o"), headers=bearer(TEAM_A)) for _ in range(4)]
    assert [(a.code, outcome(a)) for a in answers] == [(200, "store")] + [(200, "hit")] * 3
    logged = await entries(router, 4)
    cost = logged[0]["cost_usd"]
    assert cost == pytest.approx(0.0001075)
    for entry in logged[1:]:
        assert entry["cost_usd"] == 0.0 and entry["cache"]["saved_usd"] == pytest.approx(cost)
        assert entry["provider"] == "oai" and entry["sent_model"] == "gpt-4o"

    usage = json.loads((await router.client.fetch(router.url + "/v1/usage?period=day", headers=bearer(TEAM_A))).body)
    total = usage["keys"]["team-a"]["total"]
    assert total["requests"] == 4 and total["cache_hits"] == 3
    assert total["cost_usd"] == pytest.approx(cost) and total["cache_saved_usd"] == pytest.approx(3 * cost)
    assert total["input_tokens"] == 4 * 10 and total["output_tokens"] == 4 * 8  # the tokens served, as tpm counts them


@pytest.mark.gen_test
async def test_metrics_count_hits_misses_bypasses_bytes_and_savings(cached_router, upstream):
    router = cached_router()
    body = ask(OPENAI, "gpt-4o")
    for headers in ({}, {}, {}, {"Cache-Control": "no-store"}):
        await router.post(OPENAI, body, headers=headers)
    text = (await router.get("/metrics")).body.decode()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tornrouter_cache_")}
    assert samples['tornrouter_cache_requests_total{outcome="store"}'] == 1
    assert samples['tornrouter_cache_requests_total{outcome="hit"}'] == 2
    assert samples['tornrouter_cache_requests_total{outcome="bypass"}'] == 1
    stored = (await entries(router, 1))[0]["cache"]["bytes"]
    assert samples["tornrouter_cache_stored_bytes_total"] == stored
    assert samples["tornrouter_cache_bytes"] == router.runtime.cache.size_bytes() > stored
    assert samples['tornrouter_cache_saved_usd_total{key="anonymous",model="gpt-4o",provider="oai"}'] == pytest.approx(2 * 0.0001075)


@pytest.mark.gen_test
async def test_memory_stays_within_its_bound_under_many_distinct_answers(start_router, upstream, tmp_path):
    config = cached(upstream.url, str(tmp_path / "requests.jsonl"), max_entry_bytes=4096)
    config["cache"] = {"max_bytes": 16384}
    router = start_router(config)
    store = router.runtime.cache.backend
    for i in range(60):
        assert outcome(await router.post(OPENAI, ask(OPENAI, "gpt-4o", f"question {i}"))) == "store"
        assert store.size_bytes() <= 16384
    assert 0 < len(store) < 60
    assert outcome(await router.post(OPENAI, ask(OPENAI, "gpt-4o", "question 59"))) == "hit"
    assert outcome(await router.post(OPENAI, ask(OPENAI, "gpt-4o", "question 0"))) == "store"  # evicted long ago


@pytest.mark.gen_test
async def test_entries_hold_no_upstream_key(cached_router, upstream):
    router = cached_router()
    for path, model in (p.values for p in PATHS):
        await router.post(path, ask(path, model))
    store = router.runtime.cache.backend
    assert len(store) == 4
    held = b"".join(value for value, _ in store._entries.values())
    assert b"SECRET" not in held and b"sk-" not in held
    assert all("SECRET" not in json.dumps(e) for e in await entries(router, 4))


@pytest.mark.gen_test(timeout=60)
async def test_the_dashboard_shows_hits(cached_router, upstream, browser):
    router = cached_router()
    await browser.goto(router.url + "/dashboard")
    await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'")
    for _ in range(3):
        await router.post(OPENAI, ask(OPENAI, "gpt-4o"))
    await browser.wait_for("document.getElementById('stat-cache').textContent === '2'")
    notes = await browser.evaluate("Array.from(document.querySelectorAll('#rows tr .cache'), n => n.textContent)")
    assert notes == ["cache hit", "cache hit", "cache store"]
    await browser.click("#rows tr:first-child")
    await browser.wait_for("!document.getElementById('detail').hidden")
    detail = await browser.evaluate("document.getElementById('detail-body').textContent")
    assert "hit · age 0 s · saved $0.00010" in detail
    assert browser.errors == []


@pytest.mark.gen_test
async def test_a_reload_keeps_the_memory_cache_while_it_stays_in_place():
    from tornrouter.config import parse_config
    from tornrouter.runtime import Runtime

    def config(ttl_s: float = 600, **cache: Any):
        raw = {"providers": {"echo": {"kind": "echo"}}, "router": {"default": "echo"},
               "cache": {"models": [{"model": "*", "ttl_s": ttl_s}], **cache}}
        return parse_config(raw, environ={})

    first = Runtime(config())
    second = Runtime(config(ttl_s=60), first)  # the rules change, the entries stay
    assert second.cache.backend is first.cache.backend
    third = Runtime(config(max_bytes=1 << 20), second)  # another bound: another store
    assert third.cache.backend is not second.cache.backend
    for runtime in (first, second, third):
        await runtime.cache.aclose()
        runtime.close()
