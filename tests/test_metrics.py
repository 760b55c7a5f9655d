"""``GET /metrics``: what a scrape shows after real requests, breaker states
read at scrape time, the admin key, and the multiprocess mode across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.access_support import ADMIN_KEY, TEAM_A, bearer
from tests.fake_upstream import Reply
from tests.wire import ANTHROPIC, OPENAI, chat, message

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def scrape(router, headers=None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    response = await router.client.fetch(router.url + "/metrics", headers=headers or {})
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.gen_test
async def test_a_scrape_counts_requests_latencies_tokens_and_cost(router, upstream):
    assert (await router.post(OPENAI, chat("gpt-4o"))).code == 200
    assert (await router.post(ANTHROPIC, message("local-echo"))).code == 200
    assert (await router.post(OPENAI, {**chat("gpt-4o"), "stream": True})).code == 200
    assert (await router.post(OPENAI, {"model": "gpt-4o"})).code == 400
    upstream.then(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    assert (await router.post(OPENAI, chat("gpt-4o"))).code == 500  # the upstream's own, relayed
    samples = await scrape(router)

    requests = "tornrouter_requests_total"
    assert value(samples, requests, endpoint=OPENAI, provider="oai", model="gpt-4o", status="200") == 2
    assert value(samples, requests, endpoint=ANTHROPIC, provider="echo", model="local-echo", status="200") == 1
    assert value(samples, requests, endpoint=OPENAI, provider="none", model="none", status="400") == 1
    assert value(samples, requests, endpoint=OPENAI, provider="oai", model="gpt-4o", status="500") == 1
    duration = "tornrouter_request_duration_seconds_count"
    assert value(samples, duration, endpoint=OPENAI, provider="oai", model="gpt-4o") == 3
    assert value(samples, "tornrouter_time_to_first_token_seconds_count", endpoint=OPENAI, provider="oai", model="gpt-4o") == 1
    attempts = "tornrouter_upstream_attempt_duration_seconds_count"
    assert value(samples, attempts, provider="oai", model="gpt-4o", status="200") == 2
    assert value(samples, attempts, provider="oai", model="gpt-4o", status="500") == 1
    # every request that went upstream, streams included (up to their first byte)
    assert value(samples, "tornrouter_router_overhead_seconds_count", endpoint=OPENAI) == 3
    tokens = "tornrouter_tokens_total"
    assert value(samples, tokens, provider="oai", model="gpt-4o", key="anonymous", type="input") == 10
    assert value(samples, tokens, provider="oai", model="gpt-4o", key="anonymous", type="cache_read") == 2
    assert value(samples, tokens, provider="oai", model="gpt-4o", key="anonymous", type="output") == 8
    # gpt-4o at the default prices: 10 input at 2.50, 2 cached at 1.25, 8 output at 10 USD per million
    cost = value(samples, "tornrouter_cost_usd_total", provider="oai", model="gpt-4o", key="anonymous")
    assert cost == pytest.approx((10 * 2.5 + 2 * 1.25 + 8 * 10.0) / 1e6)
    assert value(samples, "tornrouter_requests_in_flight", endpoint=OPENAI) == 0
    assert value(samples, "tornrouter_state_backend_up") == 1
    assert value(samples, "tornrouter_circuit_state", provider="oai", state="closed") == 1
    entries = router.log_entries()
    assert sum(e["cost_usd"] or 0 for e in entries if e["provider"] == "oai") == pytest.approx(cost)


@pytest.mark.gen_test
async def test_breaker_states_are_read_when_scraped(start_router, upstream):
    router = start_router()
    breaker_config = {"failures": 1, "window_s": 30, "cooldown_s": 300}
    router2 = start_router(providers={
        "oai": {"kind": "openai", "base_url": upstream.url + "/v1", "breaker": breaker_config},
        "ant": {"kind": "anthropic", "base_url": upstream.url},
        "oresp": {"kind": "openai-responses", "base_url": upstream.url + "/v1"},
        "echo": {"kind": "echo"},
    })
    upstream.then(Reply(status=503, body={"error": {"message": "down", "type": "server_error"}}))
    assert (await router2.post(OPENAI, chat("gpt-4o"))).code in (502, 503)
    samples = await scrape(router2)
    assert value(samples, "tornrouter_circuit_state", provider="oai", state="open") == 1
    assert value(samples, "tornrouter_circuit_state", provider="oai", state="closed") == 0
    assert value(samples, "tornrouter_circuit_state", provider="ant", state="closed") == 1
    router2.runtime.providers["oai"].breaker.success()  # the state is read at scrape time, not remembered
    samples = await scrape(router2)
    assert value(samples, "tornrouter_circuit_state", provider="oai", state="closed") == 1
    # each router has its own registry
    assert value(await scrape(router), "tornrouter_requests_total", endpoint=OPENAI, provider="oai", model="gpt-4o", status="503") == 0


@pytest.mark.gen_test
async def test_rate_limit_refusals_are_counted_and_metrics_ask_for_the_admin_key(start_router):
    router = start_router(
        server={"dashboard": False, "admin_key": ADMIN_KEY},
        keys=[{"name": "team-a", "key": TEAM_A, "rpm": 1}],
        model_limits=[{"model": "local-*", "concurrency": 5}],
    )
    codes = [(await router.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code for _ in range(3)]
    assert codes == [200, 429, 429]
    assert (await router.post(OPENAI, chat("local-echo"))).code == 401
    response = await router.get("/metrics")
    assert response.code == 401 and json.loads(response.body)["error"]["code"] == "invalid_api_key"
    samples = await scrape(router, bearer(ADMIN_KEY))
    assert value(samples, "tornrouter_rate_limited_total", scope="key", limit="rpm", key="team-a") == 2
    assert value(samples, "tornrouter_requests_total", endpoint=OPENAI, provider="none", model="none", status="429") == 2
    assert value(samples, "tornrouter_requests_total", endpoint=OPENAI, provider="none", model="none", status="401") == 1
    assert value(samples, "tornrouter_tokens_total", provider="echo", model="local-echo", key="team-a", type="output") > 0


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from types import SimpleNamespace
    from tornrouter.context import RequestRecord
    from tornrouter.metrics import Metrics

    metrics = Metrics()
    if sys.argv[1] == "serve":
        record = RequestRecord("r", "/v1/chat/completions", http=None)
        metrics.started(record.endpoint)
        record.status = 200
        metrics.finished(record, "anonymous")
        metrics.started(record.endpoint)  # one still in flight when the process ends
    else:
        sys.stdout.write(metrics.render()[0].decode())
""")


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, a scrape of any process reports all of them."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=ROOT))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    os.mkdir(env["PROMETHEUS_MULTIPROC_DIR"])
    for _ in range(2):
        subprocess.run([sys.executable, str(script), "serve"], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, str(script), "render"], env=env, check=True, timeout=60, capture_output=True, text=True).stdout
    samples = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert value(samples, "tornrouter_requests_total", endpoint=OPENAI, provider="none", model="none", status="200") == 2
    assert value(samples, "tornrouter_request_duration_seconds_count", endpoint=OPENAI, provider="none", model="none") == 2
