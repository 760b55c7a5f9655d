"""Conversations on ``POST /v1/responses`` with the router's stored responses:
``previous_response_id`` followed on every provider kind, streamed or not;
``store: false`` keeping nothing; an answer kept before the client sees its
end; a conversation its key's alone; Redis down; and
``POST /v1/responses/input_tokens``, counted upstream or estimated."""

from __future__ import annotations

import itertools
import json
from typing import Any

import openai
import pytest

from tests.access_support import TEAM_A, TEAM_B
from tests.configs import base_config
from tests.fake_upstream import Reply, answer
from tests.redis_support import needs_redis

KEYS = [{"name": "team-a", "key": TEAM_A}, {"name": "team-b", "key": TEAM_B}]
# model -> the upstream API it reaches (None: the echo provider answers)
KINDS = {"gpt-4o": "openai", "to-anthropic": "anthropic", "resp-x": "responses", "local-echo": None}


def distinct_answers(upstream) -> None:
    """Each upstream answer under an id of its own, with its number in its
    text (the fake's canned ids are fixed, and a store keys by id)."""
    numbers = itertools.count(1)

    def choose(kind: str, body: Any) -> Reply:
        n = next(numbers)
        reply = answer(kind, body, f"answer {n}")
        if isinstance(reply.body, dict):
            reply.body["id"] = f"{reply.body['id']}-{n}"
        if reply.sse is not None:
            suffix = f"-{n}".encode()
            reply.sse = [c.replace(b"fakestream", b"fakestream" + suffix).replace(b"resp_fake0001", b"resp_fake0001" + suffix)
                         for c in reply.sse]
        return reply

    upstream.chooser = choose


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def conversing(request, start_router, upstream, tmp_path, io_loop):
    """``conversing(**overrides)`` -> a router with keys team-a and team-b, on
    each state backend, whose upstream answers each request under its own id."""
    state = {"backend": "memory"}
    if request.param == "redis":
        state = {"backend": "redis", "url": request.getfixturevalue("redis_server").url, "timeout_s": 0.25}
    distinct_answers(upstream)
    started = []

    def start(**overrides: Any):
        config = base_config(upstream.url, str(tmp_path / f"r{len(started)}.jsonl"), keys=KEYS, state=state, **overrides)
        started.append(start_router(config))
        return started[-1]

    yield start
    for router in started:
        io_loop.run_sync(router.runtime.close_access)


def sdk(router, key: str = TEAM_A) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=router.url + "/v1", api_key=key, max_retries=0)


def history_sent(kind: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every turn an upstream of ``kind`` was sent."""
    turns = body["input"] if kind == "responses" else body["messages"]
    out = []
    for turn in turns:
        content = turn.get("content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        out.append((turn["role"], text))
    return [(role, text) for role, text in out if role != "system"]


async def create(client, model: str, stream: bool, **fields: Any):
    """``client.responses.create``, or the same through the SDK's stream helper."""
    if not stream:
        return await client.responses.create(model=model, **fields)
    async with client.responses.stream(model=model, **fields) as events:
        return await events.get_final_response()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", KINDS)
async def test_previous_response_id_continues_on_every_kind(conversing, upstream, model, stream):
    router = conversing()
    client = sdk(router)
    first = await create(client, model, stream, input="My name is Ada.")
    second = await create(client, model, stream, input="What is my name?", previous_response_id=first.id)
    third = await create(client, model, stream, input="Thanks.", previous_response_id=second.id)
    assert len({first.id, second.id, third.id}) == 3
    assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    kind = KINDS[model]
    if kind is not None:  # the upstream got the whole conversation, and no id it never issued
        sent = upstream.last.body
        assert "previous_response_id" not in sent
        assert history_sent(kind, sent) == [
            ("user", "My name is Ada."), ("assistant", first.output_text),
            ("user", "What is my name?"), ("assistant", second.output_text), ("user", "Thanks."),
        ]
    kept = await client.responses.retrieve(third.id)
    assert (kept.id, kept.output_text, kept.previous_response_id) == (third.id, third.output_text, second.id)
    items = [item async for item in client.responses.input_items.list(third.id, order="asc")]
    texts = [part.text for item in items for part in item.content]
    assert texts == ["My name is Ada.", first.output_text, "What is my name?", second.output_text, "Thanks."]
    await client.close()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_upstream_that_repeats_its_ids_keeps_conversations_apart(conversing, upstream, stream):
    """Local servers repeat their ids (``chatcmpl-123``): each answer still gets
    an id of its own, and each conversation continues with its own history."""
    router = conversing()
    upstream.chooser = None  # the fake's canned answers, all under one id
    client = sdk(router)
    ada = await create(client, "gpt-4o", stream, input="My name is Ada.")
    bob = await create(client, "gpt-4o", stream, input="My name is Bob.")
    assert ada.id != bob.id
    await create(client, "gpt-4o", stream, input="What is my name?", previous_response_id=ada.id)
    assert history_sent("openai", upstream.last.body)[0] == ("user", "My name is Ada.")
    await client.close()


@pytest.mark.gen_test(timeout=60)
async def test_store_false_keeps_nothing_and_continues_all_the_same(conversing, upstream):
    router = conversing()
    client = sdk(router)
    first = await client.responses.create(model="gpt-4o", input="remember nothing", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-4o", input="and?", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found" and caught.value.body["param"] == "previous_response_id"
    # Codex's way: the whole conversation every time, nothing stored
    stored = await client.responses.create(model="gpt-4o", input="kept")
    answer_ = await client.responses.create(model="gpt-4o", input="not kept", store=False, previous_response_id=stored.id)
    assert history_sent("openai", upstream.last.body)[0] == ("user", "kept")
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(answer_.id)
    await client.close()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("model", ["to-anthropic", "resp-x"])
async def test_a_stream_is_kept_before_its_last_event(conversing, model):
    router = conversing()
    client = sdk(router)
    async with client.responses.stream(model=model, input="one") as events:
        async for event in events:
            if event.type == "response.completed":  # the router has not finished this stream yet
                follow = await client.responses.create(model=model, input="two", previous_response_id=event.response.id)
                assert follow.previous_response_id == event.response.id
    await client.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_conversation_is_its_keys_alone(conversing, upstream):
    router = conversing()
    mine, theirs = sdk(router, TEAM_A), sdk(router, TEAM_B)
    first = await mine.responses.create(model="gpt-4o", input="secret")
    served = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        await theirs.responses.create(model="gpt-4o", input="tell me", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"
    assert len(upstream.requests) == served  # refused before anything went upstream
    with pytest.raises(openai.NotFoundError):
        await theirs.responses.retrieve(first.id)
    await mine.close()
    await theirs.close()


@needs_redis
@pytest.mark.gen_test(timeout=60)
async def test_redis_down_refuses_continuations_and_still_answers(start_router, upstream, redis_server, tmp_path, log_guard):
    distinct_answers(upstream)
    state = {"backend": "redis", "url": redis_server.url, "timeout_s": 0.25}
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), keys=KEYS, state=state))
    router.runtime.responses.outage.retry_s = 0
    client = sdk(router)
    try:
        first = await client.responses.create(model="gpt-4o", input="hi")
        redis_server.kill()
        with pytest.raises(openai.InternalServerError) as caught:
            await client.responses.create(model="gpt-4o", input="and?", previous_response_id=first.id)
        assert caught.value.status_code == 503 and "stored responses cannot be reached" in caught.value.message
        plain = await client.responses.create(model="gpt-4o", input="still answered")  # not stored, said in the log
        assert plain.output_text.startswith("answer")
    finally:
        await client.close()
        await router.runtime.close_access()


# --- POST /v1/responses/input_tokens ----------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("model", ["gpt-4o", "to-anthropic", "local-echo"])
async def test_input_tokens_are_estimated_for_other_upstreams(conversing, upstream, model):
    router = conversing()
    client = sdk(router)
    first = await client.responses.create(model=model, input="x" * 400)
    served = len(upstream.requests)
    raw = await client.responses.input_tokens.with_raw_response.count(model=model, input="y" * 40, previous_response_id=first.id)
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == (400 + len(first.output_text) + 40) // 4  # the whole conversation counted
    assert raw.headers["x-tornrouter-estimate"] == "characters/4"
    assert len(upstream.requests) == served
    await client.close()


@pytest.mark.gen_test(timeout=60)
async def test_input_tokens_are_counted_by_a_responses_upstream(conversing, upstream):
    router = conversing()
    client = sdk(router)
    first = await client.responses.create(model="to-responses", input="hello")
    upstream.then(Reply(body={"object": "response.input_tokens", "input_tokens": 4242}))
    raw = await client.responses.input_tokens.with_raw_response.count(
        model="to-responses", input="and then?", previous_response_id=first.id, instructions="be brief")
    assert raw.parse().input_tokens == 4242 and "x-tornrouter-estimate" not in raw.headers
    sent = upstream.last
    assert sent.path == "/v1/responses/input_tokens" and sent.headers["Authorization"] == "Bearer sk-test-openai-SECRET"
    assert sent.body["model"] == "gpt-5-mini" and sent.body["instructions"] == "be brief"
    assert "previous_response_id" not in sent.body
    assert [item.get("role") for item in sent.body["input"]] == ["user", "assistant", "user"]
    upstream.then(Reply(status=429, headers={"Retry-After": "3"},
                        body={"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.input_tokens.count(model="to-responses", input="x")
    assert caught.value.response.headers["retry-after"] == "3"
    await client.close()


@pytest.mark.gen_test(timeout=60)
async def test_input_tokens_ask_for_a_key_and_a_model_it_may_use(start_router, upstream, tmp_path):
    keys = [{"name": "team-a", "key": TEAM_A, "models": ["gpt-*"]}]
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), keys=keys))
    await router.ready
    for headers, status in [({}, 401), ({"Authorization": f"Bearer {TEAM_A}"}, 403)]:
        response = await router.client.fetch(router.url + "/v1/responses/input_tokens", method="POST", raise_error=False,
                                              body=json.dumps({"model": "claude-x", "input": "hi"}), headers=headers)
        assert response.code == status and set(json.loads(response.body)["error"]) == {"message", "type", "param", "code"}
