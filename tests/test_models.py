"""``GET /v1/models`` and ``GET /v1/models/{id}`` in each API's shape: OpenAI's
list by default, Anthropic's paginated list for a client that sends
``anthropic-version``, each checked with the official SDK (pagination in
both directions included) and on the wire."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.access_support import TEAM_A, bearer

MODELS = [f"model-{n}" for n in range(1, 8)] + ["org/slashed-model"]
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def listing(start_router, upstream, tmp_path):
    """A router that lists ``MODELS``, in that order."""
    return start_router({
        "providers": {"oai": {"kind": "openai", "base_url": upstream.url + "/v1", "models": MODELS}},
        "router": {"default": "oai"},
        "log": {"requests": str(tmp_path / "r.jsonl")},
    })


async def get_json(router, path: str, headers: dict[str, str] | None = None):
    await router.ready
    response = await router.client.fetch(router.url + path, headers=headers, raise_error=False)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test
async def test_openai_shape_is_the_default(listing):
    code, body = await get_json(listing, "/v1/models")
    assert code == 200
    assert body == {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "oai"} for m in MODELS]}
    code, body = await get_json(listing, "/v1/models/org/slashed-model")
    assert (code, body) == (200, {"id": "org/slashed-model", "object": "model", "created": 0, "owned_by": "oai"})
    code, body = await get_json(listing, "/v1/models/nope")
    assert code == 404
    assert body == {"error": {"message": "model 'nope' is not served by this router", "type": "invalid_request_error",
                              "param": "model", "code": "model_not_found"}}


@pytest.mark.gen_test
async def test_openai_sdk_lists_and_retrieves(listing):
    client = openai.AsyncOpenAI(base_url=listing.url + "/v1", api_key="k", max_retries=0)
    assert [m.id async for m in client.models.list()] == MODELS
    model = await client.models.retrieve("model-3")
    assert (model.id, model.owned_by, model.object) == ("model-3", "oai", "model")
    assert (await client.models.retrieve("org/slashed-model")).id == "org/slashed-model"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("missing")
    assert caught.value.code == "model_not_found"
    await client.close()


@pytest.mark.gen_test
async def test_anthropic_pages_on_the_wire(listing):
    def ids(body):
        return [m["id"] for m in body["data"]]

    code, body = await get_json(listing, "/v1/models", ANTHROPIC_HEADERS)
    assert code == 200 and ids(body) == MODELS and body["has_more"] is False
    assert body["data"][0] == {"type": "model", "id": "model-1", "display_name": "model-1", "created_at": "1970-01-01T00:00:00Z"}
    assert (body["first_id"], body["last_id"]) == ("model-1", "org/slashed-model")

    _, body = await get_json(listing, "/v1/models?limit=3", ANTHROPIC_HEADERS)
    assert ids(body) == MODELS[:3] and body["has_more"] is True
    assert (body["first_id"], body["last_id"]) == ("model-1", "model-3")
    _, body = await get_json(listing, "/v1/models?limit=3&after_id=model-3", ANTHROPIC_HEADERS)
    assert ids(body) == MODELS[3:6] and body["has_more"] is True
    _, body = await get_json(listing, "/v1/models?limit=3&after_id=model-6", ANTHROPIC_HEADERS)
    assert ids(body) == MODELS[6:] and body["has_more"] is False
    # before_id: the page immediately before, has_more in that direction
    _, body = await get_json(listing, "/v1/models?limit=3&before_id=model-7", ANTHROPIC_HEADERS)
    assert ids(body) == MODELS[3:6] and body["has_more"] is True
    _, body = await get_json(listing, "/v1/models?limit=3&before_id=model-3", ANTHROPIC_HEADERS)
    assert ids(body) == MODELS[:2] and body["has_more"] is False
    _, body = await get_json(listing, "/v1/models?before_id=model-1", ANTHROPIC_HEADERS)
    assert body == {"data": [], "has_more": False, "first_id": None, "last_id": None}


@pytest.mark.gen_test
@pytest.mark.parametrize("query,param", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=many", "limit"),
    ("after_id=nope", "after_id"), ("before_id=nope", "before_id"),
    ("after_id=model-1&before_id=model-3", "before_id"),
])
async def test_anthropic_bad_parameters_are_400_in_its_shape(listing, query, param):
    code, body = await get_json(listing, "/v1/models?" + query, ANTHROPIC_HEADERS)
    assert code == 400
    assert body["type"] == "error" and body["error"]["message"].startswith(param + ":")


@pytest.mark.gen_test
async def test_anthropic_sdk_lists_pages_and_retrieves(listing):
    client = anthropic.AsyncAnthropic(base_url=listing.url, api_key="k", max_retries=0)
    assert [m.id async for m in client.models.list()] == MODELS
    assert [m.id async for m in client.models.list(limit=3)] == MODELS  # three pages, after_id each time
    backward = [m.id async for m in client.models.list(limit=3, before_id="org/slashed-model")]
    assert backward == MODELS[4:7] + MODELS[1:4] + MODELS[:1]  # page by page towards the start
    page = await client.models.list(limit=2, after_id="model-2")
    assert [m.id for m in page.data] == ["model-3", "model-4"] and page.has_more
    assert (await client.models.retrieve("org/slashed-model")).id == "org/slashed-model"
    info = await client.models.retrieve("model-5")
    assert (info.id, info.display_name, info.type) == ("model-5", "model-5", "model")
    assert info.created_at.year == 1970
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.models.retrieve("missing")
    assert caught.value.body["error"]["type"] == "not_found_error"
    await client.close()


@pytest.mark.gen_test
async def test_both_shapes_ask_for_a_key(start_router):
    router = start_router({
        "providers": {"echo": {"kind": "echo", "models": ["echo-1"]}},
        "router": {"default": "echo"},
        "keys": [{"name": "team-a", "key": TEAM_A}],
    })
    code, body = await get_json(router, "/v1/models", ANTHROPIC_HEADERS)
    assert code == 401 and body["type"] == "error"
    code, body = await get_json(router, "/v1/models/echo-1")
    assert code == 401 and "error" in body
    code, body = await get_json(router, "/v1/models/echo-1", {**ANTHROPIC_HEADERS, "x-api-key": TEAM_A})
    assert code == 200 and body["type"] == "model"
    code, body = await get_json(router, "/v1/models", bearer(TEAM_A))
    assert code == 200 and [m["id"] for m in body["data"]] == ["echo-1"]
