"""Malformed bodies never get a 500: valid requests mutated at random (fields
deleted, values swapped for others of the wrong type, control characters,
huge numbers) must each get an answer or a 400 in the endpoint's own shape."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"

VALID_OPENAI = {
    "model": "gpt-5.4",
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "stop": ["x"],
    "max_tokens": 10,
    "temperature": 0.5,
}
VALID_ANTHROPIC = {
    "model": "claude-x",
    "max_tokens": 10,
    "system": [{"type": "text", "text": "s"}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ],
    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["x"],
    "temperature": 0.5,
}
ODD_VALUES = [None, 0, -1, 1.5, "x", "", "\x00\n", [], {}, [1], {"a": 1}, True, 10**30]
MODELS = ["gpt-5.4", "claude-x", "to-openai", "to-anthropic", "local-echo", "m\x00del\n"]


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _mutate(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = copy.deepcopy(body)
    path = rng.choice(list(_paths(body)))
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return body


@pytest.mark.gen_test(timeout=120)
async def test_mutated_bodies_never_get_a_500(router, upstream):
    rng = random.Random(2024)
    seen: dict[int, int] = {}
    for _ in range(400):
        path, valid = rng.choice([(OPENAI, VALID_OPENAI), (ANTHROPIC, VALID_ANTHROPIC)])
        body = valid
        for _ in range(rng.randrange(1, 4)):
            body = _mutate(body, rng)
        if rng.random() < 0.5:
            body["model"] = rng.choice(MODELS)
        if rng.random() < 0.2:
            body["stream"] = True
        response = await router.post(path, json.dumps(body).encode())
        seen[response.code] = seen.get(response.code, 0) + 1
        assert response.code in (200, 400), (response.code, body, response.body[:300])
        if response.code == 400:
            error = json.loads(response.body)
            assert error["type"] == "error" if path == ANTHROPIC else "message" in error["error"]
    assert seen.get(200) and seen.get(400)  # both kinds of outcome were exercised
