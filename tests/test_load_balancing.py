"""Load balancing (``strategy: loadbalance``): requests are spread over the
targets by their weights, and a target that fails hands the request to
another."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.configs import dead_url, every_model_to, provider
from tests.upstream_faults import attempts, logged_once, request_body
from tests.wire import OPENAI


@pytest.mark.gen_test
async def test_loadbalance_follows_the_weights(start_router, fakes, tmp_path):
    heavy, light = fakes(), fakes()
    router = start_router(every_model_to(
        tmp_path,
        {"heavy": provider("openai", heavy.url), "light": provider("openai", light.url)},
        [{"target": "heavy", "weight": 3}, {"target": "light", "weight": 1}],
        strategy="loadbalance",
    ))

    responses = []
    for _ in range(10):  # 200 requests, 20 at a time
        responses += await asyncio.gather(*(router.post(OPENAI, request_body(OPENAI)) for _ in range(20)))

    assert all(r.code == 200 for r in responses)
    served = Counter(r.headers["x-tornrouter-provider"] for r in responses)
    assert served["heavy"] == len(heavy.requests) and served["light"] == len(light.requests)
    # Expected 150:50; the band is five standard deviations (sd ~ 6.1) wide on each side.
    assert 120 <= len(heavy.requests) <= 180, served
    await logged_once(router, *responses)


@pytest.mark.gen_test
async def test_loadbalance_fails_over_to_the_other_target(start_router, fakes, tmp_path):
    good = fakes()
    router = start_router(every_model_to(
        tmp_path,
        {"down": provider("openai", dead_url()), "good": provider("openai", good.url)},
        [{"target": "down", "weight": 1}, {"target": "good", "weight": 1}],
        strategy="loadbalance",
    ))

    responses = await asyncio.gather(*(router.post(OPENAI, request_body(OPENAI)) for _ in range(20)))

    assert all(r.code == 200 and r.headers["x-tornrouter-provider"] == "good" for r in responses)
    entries = await logged_once(router, *responses)
    orders = Counter(tuple(attempts(e)) for e in entries.values())
    assert set(orders) <= {(("good", 200),), (("down", 599), ("good", 200))}, orders
    assert len(orders) == 2  # both orders were drawn (each with probability 1/2 per request)
