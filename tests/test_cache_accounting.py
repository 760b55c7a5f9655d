"""Prompt-cache accounting, end to end: the cache reads and writes each API
reports reach the client, the request log, ``/v1/usage``, the metrics and the
cost, priced at the cache prices; ``cache_control`` travels same-format and is
reported lossy to the other API."""

from __future__ import annotations

import json

import pytest

from tests.fake_upstream import Reply, openai_completion, sse_data, sse_event
from tests.upstream_faults import send
from tests.wire import ANTHROPIC, OPENAI, chat, message

# Anthropic: 100 uncached, 12,000 read from the cache, 3,000 written (2,000 of them for an hour).
ANTHROPIC_USAGE = {
    "input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 12000, "cache_creation_input_tokens": 3000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
}
LOGGED_ANTHROPIC = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 12000,
                    "cache_creation_tokens": 3000, "cache_creation_1h_tokens": 2000}
# claude-sonnet-4-5 at the default prices: 3 in, 15 out, 0.30 cache read, 3.75 write (5 min), 6.00 write (1 h)
ANTHROPIC_COST = (100 * 3 + 20 * 15 + 12000 * 0.3 + 1000 * 3.75 + 2000 * 6.0) / 1e6
# OpenAI: 5,000 prompt tokens, 4,000 of them cached.
OPENAI_USAGE = {"prompt_tokens": 5000, "completion_tokens": 50, "total_tokens": 5050,
                "prompt_tokens_details": {"cached_tokens": 4000, "audio_tokens": 0}}
LOGGED_OPENAI = {"input_tokens": 1000, "output_tokens": 50, "cache_read_tokens": 4000}
OPENAI_COST = (1000 * 2.5 + 50 * 10 + 4000 * 1.25) / 1e6  # gpt-4o: 2.50 in, 10 out, 1.25 cached


def anthropic_answer(stream: bool, model: str = "claude-sonnet-4-5") -> Reply:
    """An answer with ANTHROPIC_USAGE; streamed as the API streams usage: the
    input side in message_start, the totals again in message_delta."""
    if not stream:
        return Reply(body={"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                           "content": [{"type": "text", "text": "cached"}], "stop_reason": "end_turn",
                           "stop_sequence": None, "usage": ANTHROPIC_USAGE})
    start = {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
             "stop_sequence": None, "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}
    return Reply(sse=[
        sse_event("message_start", {"type": "message_start", "message": start}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "cached"}}),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": ANTHROPIC_USAGE}),
        sse_event("message_stop", {"type": "message_stop"}),
    ])


def openai_answer(stream: bool) -> Reply:
    if not stream:
        return Reply(body={**openai_completion({"model": "gpt-4o"}, "cached"), "usage": OPENAI_USAGE})
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    return Reply(sse=[
        sse_data({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "cached"}, "finish_reason": None}]}),
        sse_data({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        sse_data({**head, "choices": [], "usage": OPENAI_USAGE}),
        b"data: [DONE]\n\n",
    ])


async def usage_report(router) -> dict:
    await router.runtime.access.drain()
    return json.loads((await router.get("/v1/usage?period=day")).body)["keys"]["anonymous"]


async def metric(router, name: str, **labels: str) -> float:
    text = (await router.get("/metrics")).body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1:line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anthropic_cache_reads_and_writes_are_counted_and_priced(router, upstream, stream):
    upstream.then(anthropic_answer(stream))
    response, raw = await send(router, ANTHROPIC, message("claude-sonnet-4-5", stream=stream))
    assert response.code == 200
    if not stream:  # the client gets the usage as the upstream said it, the split by time to live included
        assert json.loads(raw)["usage"] == ANTHROPIC_USAGE
    (entry,) = router.log_entries()
    assert entry["usage"] == LOGGED_ANTHROPIC
    assert entry["cost_usd"] == pytest.approx(ANTHROPIC_COST)
    total = (await usage_report(router))["total"]
    assert (total["cache_read_tokens"], total["cache_creation_tokens"]) == (12000, 3000)
    assert total["cost_usd"] == pytest.approx(ANTHROPIC_COST)
    labels = {"provider": "ant", "model": "claude-sonnet-4-5", "key": "anonymous"}
    assert await metric(router, "tornrouter_tokens_total", type="cache_read", **labels) == 12000
    assert await metric(router, "tornrouter_tokens_total", type="cache_creation", **labels) == 3000
    assert await metric(router, "tornrouter_cost_usd_total", **labels) == pytest.approx(ANTHROPIC_COST)


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_openai_cached_tokens_are_counted_and_priced(router, upstream, stream):
    upstream.then(openai_answer(stream))
    body = chat("gpt-4o", stream=stream, **({"stream_options": {"include_usage": True}} if stream else {}))
    response, raw = await send(router, OPENAI, body)
    assert response.code == 200
    (entry,) = router.log_entries()
    assert entry["usage"] == LOGGED_OPENAI
    assert entry["cost_usd"] == pytest.approx(OPENAI_COST)
    total = (await usage_report(router))["total"]
    assert (total["input_tokens"], total["cache_read_tokens"]) == (1000, 4000)
    labels = {"provider": "oai", "model": "gpt-4o", "key": "anonymous"}
    assert await metric(router, "tornrouter_tokens_total", type="cache_read", **labels) == 4000


@pytest.mark.gen_test
async def test_cache_counts_cross_the_apis(router, upstream):
    upstream.then(anthropic_answer(False, "claude-haiku-4-5"), openai_answer(False))
    to_openai_client = json.loads((await router.post(OPENAI, chat("to-anthropic"))).body)["usage"]
    to_anthropic_client = json.loads((await router.post(ANTHROPIC, message("to-openai"))).body)["usage"]
    assert to_openai_client["prompt_tokens"] == 100 + 12000 + 3000  # OpenAI counts cached input in the prompt
    assert to_openai_client["prompt_tokens_details"]["cached_tokens"] == 12000
    assert to_openai_client["prompt_tokens_details"]["cache_write_tokens"] == 3000
    assert (to_anthropic_client["input_tokens"], to_anthropic_client["cache_read_input_tokens"]) == (1000, 4000)
    entries = router.log_entries()
    assert [e["usage"] for e in entries] == [LOGGED_ANTHROPIC, LOGGED_OPENAI]


@pytest.mark.gen_test
async def test_the_price_table_takes_cache_prices(start_router, upstream, tmp_path):
    from tests.configs import base_config

    prices = {"ant/claude-sonnet-4-5": {"input": 1, "output": 2, "cache_read": 0.1, "cache_write": 1.5, "cache_write_1h": 3}}
    router = start_router(base_config(upstream.url, str(tmp_path / "requests.jsonl"), prices=prices))
    upstream.then(anthropic_answer(False))
    assert (await router.post(ANTHROPIC, message("claude-sonnet-4-5"))).code == 200
    (entry,) = router.log_entries()
    assert entry["cost_usd"] == pytest.approx((100 * 1 + 20 * 2 + 12000 * 0.1 + 1000 * 1.5 + 2000 * 3) / 1e6)


@pytest.mark.gen_test
async def test_cache_control_is_relayed_same_format_and_lossy_across(router, upstream):
    cached = {"type": "ephemeral", "ttl": "1h"}
    body = message("claude-sonnet-4-5", system=[{"type": "text", "text": "rules", "cache_control": cached}],
                   tools=[{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": cached}])
    body["messages"][0]["content"] = [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]
    assert (await router.post(ANTHROPIC, body)).code == 200
    assert upstream.last.body == body
    crossed = await router.post(ANTHROPIC, {**body, "model": "to-openai"})
    assert crossed.code == 200
    lossy = crossed.headers["x-tornrouter-lossy"].split(", ")
    assert "text.cache_control" in lossy and any(name.endswith("cache_control") and "tool" in name for name in lossy)
    assert "cache_control" not in json.dumps(upstream.last.body)
