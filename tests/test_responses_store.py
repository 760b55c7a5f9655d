"""Stored responses of the Responses API (``tornrouter.responses_store``): a
conversation kept per response and followed back through
``previous_response_id``; ``GET``/``DELETE /v1/responses/{id}`` and
``.../input_items`` with the openai SDK; a response is its key's alone; in
memory (bounded in bytes, LRU, TTL) and in a real Redis (shared by two
instances, TTL in Redis, an outage a clear 503)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.access_support import TEAM_A, TEAM_B, bearer
from tests.configs import echo_only
from tests.redis_support import needs_redis
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError, NotFound, PreviousResponseNotFound
from tornrouter.responses_store import ResponsesStore, as_input_items, make_responses_store
from tornrouter.responses_store.records import MemoryRecords
from tornrouter.runtime import Runtime

KEYS = [{"name": "team-a", "key": TEAM_A}, {"name": "team-b", "key": TEAM_B}]


def response(rid: str, text: str, previous: str | None = None, **extra: Any) -> dict[str, Any]:
    """A finished response object as the router answers one."""
    return {
        "id": rid, "object": "response", "created_at": 1767225600, "status": "completed", "model": "gpt-5.5",
        "output": [{"type": "message", "id": f"msg_{rid}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "previous_response_id": previous, "store": True, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [], "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
        **extra,
    }


CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\": \"ls\"}"}
CALL_OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "README.md"}


async def save_conversation(store: ResponsesStore, key: str | None) -> None:
    """resp_1 <- resp_2 <- resp_3: a text turn, a tool call, its result."""
    await store.save(response("resp_1", "hello"), as_input_items("hi"), key)
    await store.save(response("resp_2", "", "resp_1", output=[CALL]),
                     [{"role": "user", "content": "list the files"}], key)
    await store.save(response("resp_3", "there is a README", "resp_2"), [CALL_OUTPUT], key)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def state(request):
    """The ``state:`` section of each backend (Redis: a real server of the test's own)."""
    if request.param == "memory":
        return {"backend": "memory"}
    return {"backend": "redis", "url": request.getfixturevalue("redis_server").url, "timeout_s": 0.25}


@pytest.fixture
def keyed_router(start_router, state, io_loop):
    """``keyed_router()`` -> a router with keys team-a and team-b on ``state``."""
    started = []

    def start(**sections: Any):
        router = start_router(echo_only(keys=KEYS, state=state, server={"dashboard": False}, **sections))
        started.append(router)
        return router

    yield start
    for router in started:
        io_loop.run_sync(router.runtime.close_access)


def sdk(router, key: str = TEAM_A) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=router.url + "/v1", api_key=key, max_retries=0)


async def call(router, method: str, path: str, key: str | None = TEAM_A) -> tuple[int, dict[str, Any]]:
    await router.ready
    response = await router.client.fetch(router.url + path, method=method, headers=bearer(key) if key else {},
                                         raise_error=False)
    return response.code, json.loads(response.body)


# --- through the router, with the openai SDK ------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_retrieve_list_input_items_and_delete_with_the_sdk(keyed_router):
    router = keyed_router()
    await save_conversation(router.runtime.responses, "team-a")
    client = sdk(router)
    got = await client.responses.retrieve("resp_3")
    assert got.id == "resp_3" and got.previous_response_id == "resp_2" and got.output_text == "there is a README"

    # the items resp_3 was generated from: the whole conversation before it, then its own input
    items = [item async for item in client.responses.input_items.list("resp_3", limit=2, order="asc")]
    assert [item.type for item in items] == ["message", "message", "message", "function_call", "function_call_output"]
    assert [item.id for item in items[:2]] == ["msg_1_0", "msg_resp_1"]  # an item sent without id gets a stable one
    assert items[0].role == "user" and items[0].content[0].text == "hi"
    assert items[2].content[0].type == "input_text" and items[2].content[0].text == "list the files"
    assert (items[3].call_id, items[4].output) == ("call_1", "README.md")
    newest_first = [item.id async for item in client.responses.input_items.list("resp_3")]
    assert newest_first == [item.id for item in reversed(items)]
    page = await client.responses.input_items.list("resp_3", limit=2, after="msg_2_0", order="asc")
    assert [item.id for item in page.data] == ["fc_1", "fco_3_0"] and page.has_more is False

    assert await client.responses.delete("resp_3") is None
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve("resp_3")
    assert caught.value.body == {"message": "no stored response 'resp_3' (never stored, expired or deleted)",
                                 "type": "invalid_request_error", "param": "response_id", "code": "not_found"}
    assert (await client.responses.retrieve("resp_2")).id == "resp_2"  # what it continued is still there
    await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_wire_shapes(keyed_router):
    router = keyed_router()
    await save_conversation(router.runtime.responses, "team-a")
    code, body = await call(router, "GET", "/v1/responses/resp_2/input_items?order=asc")
    assert code == 200
    assert body == {
        "object": "list",
        "data": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}], "status": "completed", "id": "msg_1_0"},
            response("resp_1", "hello")["output"][0],
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}], "status": "completed", "id": "msg_2_0"},
        ],
        "first_id": "msg_1_0", "last_id": "msg_2_0", "has_more": False,
    }
    assert await call(router, "GET", "/v1/responses/resp_1") == (200, response("resp_1", "hello"))
    assert await call(router, "DELETE", "/v1/responses/resp_1") == (200, {"id": "resp_1", "object": "response", "deleted": True})
    code, body = await call(router, "DELETE", "/v1/responses/resp_1")
    assert code == 404 and body["error"]["type"] == "invalid_request_error"
    # a conversation that lost a response can be neither listed nor continued
    code, body = await call(router, "GET", "/v1/responses/resp_3/input_items")
    assert code == 404 and "response 'resp_1' is no longer stored" in body["error"]["message"]
    with pytest.raises(PreviousResponseNotFound) as caught:
        await router.runtime.responses.load("resp_3", "team-a")
    assert caught.value.status == 400 and caught.value.param == "previous_response_id"


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("query,param", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("order=sideways", "order"),
    ("after=msg_nope", "after"),
])
async def test_bad_list_parameters_are_400_naming_them(keyed_router, query, param):
    router = keyed_router()
    await save_conversation(router.runtime.responses, "team-a")
    code, body = await call(router, "GET", f"/v1/responses/resp_3/input_items?{query}")
    assert code == 400 and body["error"]["param"] == param


@pytest.mark.gen_test(timeout=30)
async def test_a_response_is_its_keys_alone(keyed_router):
    router = keyed_router()
    store = router.runtime.responses
    await save_conversation(store, "team-a")
    for method, path in [("GET", "/v1/responses/resp_3"), ("DELETE", "/v1/responses/resp_3"),
                         ("GET", "/v1/responses/resp_3/input_items")]:
        code, body = await call(router, method, path, key=TEAM_B)
        assert code == 404, (method, path)
        assert body["error"]["message"] == "no stored response 'resp_3' (never stored, expired or deleted)"
        assert (await call(router, method, path, key=None))[0] == 401
    with pytest.raises(PreviousResponseNotFound):
        await store.load("resp_3", "team-b")
    assert len(await store.load("resp_3", "team-a")) == 6  # team-b's delete deleted nothing


@pytest.mark.gen_test(timeout=30)
async def test_a_stored_response_is_never_replaced(keyed_router, log_guard):
    router = keyed_router()
    store = router.runtime.responses
    await save_conversation(store, "team-a")
    # an upstream that repeats its ids: another key's answer cannot take resp_1's place...
    assert await store.save(response("resp_1", "team-b's"), as_input_items("mine now"), "team-b") is False
    assert (await store.get("resp_1", "team-a"))["output"][0]["content"][0]["text"] == "hello"
    with pytest.raises(NotFound):
        await store.get("resp_1", "team-b")
    # ...nor make a conversation a loop
    assert await store.save(response("resp_5", "loop", "resp_5"), [], "team-a") is False
    # the response's own previous_response_id is the default link; the caller's wins
    assert await store.save(response("resp_6", "six"), [], "team-a", previous_response_id="resp_3")
    assert (await store.get("resp_6", "team-a"))["previous_response_id"] == "resp_3"
    assert len(await store.load("resp_6", "team-a")) == 7


@pytest.mark.gen_test(timeout=30)
async def test_load_gives_the_whole_conversation_and_store_false_keeps_nothing(keyed_router):
    router = keyed_router()
    store = router.runtime.responses
    await save_conversation(store, "team-a")
    assert await store.load("resp_3", "team-a") == [
        {"type": "message", "role": "user", "content": "hi"},
        response("resp_1", "hello")["output"][0],
        {"role": "user", "content": "list the files"},  # kept as sent: sent upstream again as sent
        CALL,
        CALL_OUTPUT,
        response("resp_3", "there is a README")["output"][0],
    ]
    assert await store.save(response("resp_4", "not kept", "resp_3", store=False), as_input_items("x"), "team-a") is False
    with pytest.raises(NotFound):
        await store.get("resp_4", "team-a")


# --- in memory: bounded in bytes, least recently used first, time to live --------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.gen_test
async def test_memory_drops_the_least_recently_used_past_max_bytes():
    pad = "x" * 900
    one = MemoryRecords(max_bytes=1 << 20)
    await ResponsesStore(one, ttl_s=3600).save(response("resp_0", pad), [], None)
    records = MemoryRecords(max_bytes=3 * one.size + one.size // 2)  # room for three
    store = ResponsesStore(records, ttl_s=3600)
    for n in range(1, 4):
        assert await store.save(response(f"resp_{n}", pad), [], None)
    await store.get("resp_1", None)  # read: now the most recent
    await store.save(response("resp_4", pad), [], None)
    assert records.size == 3 * one.size
    for rid in ("resp_1", "resp_3", "resp_4"):
        assert (await store.get(rid, None))["id"] == rid
    with pytest.raises(NotFound):
        await store.get("resp_2", None)
    # larger than the whole store: not kept, and nothing else lost for it
    assert await store.save(response("resp_big", pad * 12), [], None) is False
    assert len(records) == 3


@pytest.mark.gen_test
async def test_memory_expiry_and_a_continued_conversation_renewed():
    clock = Clock()
    store = ResponsesStore(MemoryRecords(max_bytes=1 << 20, clock=clock), ttl_s=100)
    await store.save(response("resp_1", "one"), [], None)
    await store.save(response("resp_lonely", "alone"), [], None)
    clock.now += 90
    await store.save(response("resp_2", "two", "resp_1"), [], None)  # renews resp_1 for another 100 s
    clock.now += 90
    with pytest.raises(NotFound):
        await store.get("resp_lonely", None)
    assert [item["content"][0]["text"] for item in await store.load("resp_2", None)] == ["one", "two"]
    clock.now += 101
    with pytest.raises(PreviousResponseNotFound):
        await store.load("resp_2", None)


def test_the_responses_section_is_validated():
    config = parse_config(echo_only(), environ={})
    assert (config.responses.store_ttl_s, config.responses.max_bytes) == (30 * 86400.0, 64 * 1024 * 1024)
    assert isinstance(make_responses_store(config).records, MemoryRecords)
    with pytest.raises(ConfigError) as caught:
        parse_config(echo_only(responses={"store_ttl": 5, "max_bytes": 10}), environ={})
    assert str(caught.value).splitlines() == ["responses.max_bytes: Must be greater than or equal to 1024.",
                                              "responses.store_ttl: Unknown field."]


@pytest.mark.gen_test
async def test_a_reload_keeps_the_stored_responses_unless_their_sections_change():
    config = parse_config(echo_only(), environ={})
    first = Runtime(config)
    await first.responses.save(response("resp_1", "kept"), [], None)
    second = Runtime(config, first)  # what a SIGHUP with the same file builds
    third = Runtime(parse_config(echo_only(responses={"max_bytes": 4096}), environ={}), second)
    try:
        assert (await second.responses.get("resp_1", None))["id"] == "resp_1"
        with pytest.raises(NotFound):
            await third.responses.get("resp_1", None)
    finally:
        for runtime in (first, second, third):
            await runtime.close_access()
            runtime.close()


# --- in Redis: shared, expiring in Redis, an outage a clear 503 -------------------------------


@needs_redis
@pytest.mark.gen_test(timeout=60)
async def test_redis_any_instance_continues_any_conversation(start_router, redis_server, io_loop):
    state = {"backend": "redis", "url": redis_server.url, "timeout_s": 0.25}
    a, b = (start_router(echo_only(keys=KEYS, state=state, responses={"store_ttl_s": 1000})) for _ in range(2))
    try:
        await save_conversation(a.runtime.responses, "team-a")
        assert len(await b.runtime.responses.load("resp_3", "team-a")) == 6
        client = sdk(b)
        assert (await client.responses.retrieve("resp_1")).output_text == "hello"
        await client.close()
        # the time to live is Redis's, and continuing a conversation renews it all
        redis = redis_server.client()
        assert 990_000 < redis.pttl("tornrouter:response:resp_1") <= 1_000_000
        redis.pexpire("tornrouter:response:resp_1", 5000)
        await b.runtime.responses.save(response("resp_4", "more", "resp_3"), [], "team-a")
        assert redis.pttl("tornrouter:response:resp_1") > 5000
        assert sorted(redis.hkeys("tornrouter:response:resp_4")) == [b"data", b"key", b"prev"]
        redis.close()
    finally:
        for router in (a, b):
            await router.runtime.close_access()


@needs_redis
@pytest.mark.gen_test(timeout=60)
async def test_redis_down_is_a_clear_503_then_back(start_router, redis_server, log_guard):
    router = start_router(echo_only(keys=KEYS, state={"backend": "redis", "url": redis_server.url, "timeout_s": 0.25}))
    store = router.runtime.responses
    store.outage.retry_s = 0  # try Redis again at once
    try:
        await save_conversation(store, "team-a")
        redis_server.kill()
        for method, path in [("GET", "/v1/responses/resp_3"), ("DELETE", "/v1/responses/resp_3"),
                             ("GET", "/v1/responses/resp_3/input_items")]:
            code, body = await call(router, method, path)
            assert code == 503, (method, path)
            assert body["error"]["message"] == ("stored responses cannot be reached right now "
                                                "(state backend unreachable); retry shortly")
        assert store.outage.since is not None  # logged once, when it began
        redis_server.start()  # empty: nothing persisted
        code, body = await call(router, "GET", "/v1/responses/resp_3")
        assert code == 404 and store.outage.since is None
    finally:
        await router.runtime.close_access()
