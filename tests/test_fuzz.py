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

from tests.codec_fixtures import CodecFixtures
from tests.wire import ANTHROPIC, OPENAI
from tornrouter.formats import codec_for
from tornrouter.formats.accepts import schema_accepts
from tornrouter.formats.anthropic.schemas import REQUEST_SCHEMA as ANTHROPIC_SCHEMA
from tornrouter.formats.fields import first_problem
from tornrouter.formats.openai.schemas import REQUEST_SCHEMA as OPENAI_SCHEMA
from tornrouter.formats.responses.schemas import REQUEST_SCHEMA as RESPONSES_SCHEMA

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


@pytest.mark.gen_test(timeout=120)
async def test_mutated_upstream_answers_are_relayed_or_502(router, upstream):
    """An upstream's body is untrusted too: whatever shape it has, the client
    gets an answer or a 502, in its own API's shape, on either path."""
    from tests.fake_upstream import Reply, anthropic_message, openai_completion

    completion = openai_completion({"model": "m"})
    completion["choices"][0]["message"]["tool_calls"] = [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}
    ]
    message = anthropic_message({"model": "m"})
    message["content"].append({"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}})
    rng = random.Random(7)
    seen: dict[int, int] = {}
    for _ in range(300):
        kind = rng.choice(["openai", "anthropic"])
        body = completion if kind == "openai" else message
        for _ in range(rng.randrange(1, 3)):
            body = _mutate(body, rng)
        upstream.then(Reply(body=body))
        model = rng.choice(["gpt-5.4", "to-openai"] if kind == "openai" else ["claude-x", "to-anthropic"])
        path = rng.choice([OPENAI, ANTHROPIC])
        request = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        response = await router.post(path, request)
        seen[response.code] = seen.get(response.code, 0) + 1
        assert response.code in (200, 502), (response.code, body, response.body[:300])
        json.loads(response.body)
    assert seen.get(200) and seen.get(502)


def _mutate_stream(chunks: list[bytes], rng: random.Random) -> list[bytes]:
    """One event of a recorded stream with one field changed or deleted."""
    chunks = list(chunks)
    index = rng.randrange(len(chunks))
    head, _, data = chunks[index].decode().rpartition("data: ")
    payload = json.loads(data) if data.strip() != "[DONE]" else None
    if isinstance(payload, dict) and payload:
        chunks[index] = (head + "data: " + json.dumps(_mutate(payload, rng)) + "\n\n").encode()
    return chunks


@pytest.mark.gen_test(timeout=120)
async def test_mutated_upstream_streams_end_cleanly_when_translated(router, upstream):
    """A translated stream is re-encoded by the router's state machines: whatever
    the upstream's events hold, the client's stream is well-formed (ending with
    the API's error event when they cannot be read), or the request fails before
    its first byte with a 502."""
    from tests.fake_upstream import Reply, anthropic_sse, openai_sse
    from tornrouter.validate_stream import validate

    rng = random.Random(11)
    for _ in range(200):
        kind = rng.choice(["openai", "anthropic"])
        chunks = (openai_sse if kind == "openai" else anthropic_sse)("hello there", [("c1", "f", '{"a": 1}')])
        for _ in range(rng.randrange(1, 3)):
            chunks = _mutate_stream(chunks, rng)
        upstream.then(Reply(sse=chunks))
        path, model = (ANTHROPIC, "to-openai") if kind == "openai" else (OPENAI, "to-anthropic")
        request = {"model": model, "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        response = await router.post(path, request)
        assert response.code in (200, 502), (response.code, response.body[:300])
        if response.code == 200:
            problems = validate(response.body, "anthropic" if path == ANTHROPIC else "openai")
            # the upstream's own argument text is passed on as it came, valid JSON or not
            assert [p for p in problems if "not valid JSON" not in p] == [], (chunks, response.body)


# --- the Responses API ------------------------------------------------------------------

VALID_RESPONSES = {
    "model": "gpt-5.4",
    "instructions": "s",
    "input": [
        {"role": "developer", "content": "d"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hi"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        ]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "e"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
    ],
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}, {"type": "web_search"}],
    "tool_choice": "auto",
    "max_output_tokens": 10,
    "temperature": 0.5,
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
}
RESPONSES_MODELS = ["gpt-5.4", "resp-x", "to-anthropic", "to-responses", "local-echo", "m\x00del\n"]


@pytest.mark.gen_test(timeout=120)
async def test_mutated_responses_bodies_never_get_a_500(router, upstream):
    from tests.wire import RESPONSES

    rng = random.Random(2025)
    seen: dict[int, int] = {}
    for _ in range(300):
        body = VALID_RESPONSES
        for _ in range(rng.randrange(1, 4)):
            body = _mutate(body, rng)
        if rng.random() < 0.5:
            body["model"] = rng.choice(RESPONSES_MODELS)
        if rng.random() < 0.2:
            body["stream"] = True
        response = await router.post(RESPONSES, json.dumps(body).encode())
        seen[response.code] = seen.get(response.code, 0) + 1
        assert response.code in (200, 400), (response.code, body, response.body[:300])
        if response.code == 400:
            assert set(json.loads(response.body)["error"]) == {"message", "type", "param", "code"}
    assert seen.get(200) and seen.get(400)


@pytest.mark.gen_test(timeout=120)
async def test_mutated_responses_upstream_answers_are_relayed_or_502(router, upstream):
    from tests.fake_upstream import Reply, responses_response
    from tests.wire import RESPONSES

    answer = responses_response({"model": "m"}, "hello", [("c", "f", "{\"a\": 1}")])
    answer["output"].insert(0, {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]})
    rng = random.Random(8)
    seen: dict[int, int] = {}
    for _ in range(200):
        body = answer
        for _ in range(rng.randrange(1, 3)):
            body = _mutate(body, rng)
        upstream.then(Reply(body=body))
        path = rng.choice([OPENAI, ANTHROPIC, RESPONSES])
        request = {"model": "to-responses", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        if path == RESPONSES:
            request = {"model": rng.choice(["resp-x", "to-responses"]), "input": "hi"}
        response = await router.post(path, request)
        seen[response.code] = seen.get(response.code, 0) + 1
        assert response.code in (200, 502), (response.code, body, response.body[:300])
        json.loads(response.body)
    assert seen.get(200) and seen.get(502)


@pytest.mark.gen_test(timeout=120)
async def test_mutated_streams_to_and_from_the_responses_api_end_cleanly(router, upstream):
    """Translated into or out of the Responses API, a stream whose events were
    tampered with is still well-formed for the client, or a 502 before its first byte."""
    from tests.fake_upstream import Reply, anthropic_sse, openai_sse, responses_sse
    from tests.wire import RESPONSES
    from tornrouter.validate_stream import validate

    rng = random.Random(12)
    for _ in range(200):
        kind = rng.choice(["openai", "anthropic", "responses"])
        make = {"openai": openai_sse, "anthropic": anthropic_sse, "responses": responses_sse}[kind]
        chunks = make("hello there", [("c1", "f", '{"a": 1}')])
        for _ in range(rng.randrange(1, 3)):
            chunks = _mutate_stream(chunks, rng)
        upstream.then(Reply(sse=chunks))
        if kind == "responses":
            path = rng.choice([OPENAI, ANTHROPIC])
            request = {"model": "to-responses", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        else:
            path = RESPONSES
            request = {"model": "gpt-5.4" if kind == "openai" else "to-anthropic", "input": "hi", "stream": True}
        response = await router.post(path, request)
        assert response.code in (200, 502), (response.code, response.body[:300])
        if response.code == 200:
            fmt = {OPENAI: "openai", ANTHROPIC: "anthropic", RESPONSES: "responses"}[path]
            problems = validate(response.body, fmt)
            assert [p for p in problems if "not valid JSON" not in p] == [], (chunks, response.body)


FORMATS = {
    "openai": (VALID_OPENAI, OPENAI_SCHEMA),
    "anthropic": (VALID_ANTHROPIC, ANTHROPIC_SCHEMA),
    "responses": (VALID_RESPONSES, RESPONSES_SCHEMA),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_fast_check_vouches_only_for_valid_bodies(fmt: str) -> None:
    """``schema_accepts`` lets a body skip marshmallow: it must never accept one
    the schema refuses, and must accept the valid bodies, or it saves nothing."""
    valid, schema = FORMATS[fmt]
    fixtures = CodecFixtures(fmt, codec_for(fmt))
    for body in [valid, *(fixtures.load("requests", name) for name in fixtures.requests)]:
        assert schema_accepts(schema)(body), body
    refused = 0
    for case in fixtures.invalid:  # some are refused by the decoder, after the schema
        if first_problem(schema, case["body"]) is not None:
            assert not schema_accepts(schema)(case["body"]), case["name"]
    rng = random.Random(11)
    for _ in range(3000):
        body = valid
        for _ in range(rng.randrange(1, 4)):
            body = _mutate(body, rng)
        if first_problem(schema, body) is not None:
            refused += 1
            assert not schema_accepts(schema)(body), body
    assert refused > 1000  # the mutations did reach invalid bodies
