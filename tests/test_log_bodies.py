"""``log.bodies``: the request log (and the dashboard feed, which publishes its
lines) keeps the conversation in full, as its shape alone (``none``), or as
its shape and a SHA-256 of each block (``hash``).

Each API's request carries a system prompt, a text, an inline image, an
earlier tool call and its result, and the upstream answers with text and a
tool call: every kind of block, through a real router and fake upstream."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.configs import base_config
from tests.fake_upstream import answer
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError
from tornrouter.request_log import ENTRY_FIELDS, entry_fields

SYSTEM = "You are HIDDEN-SYSTEM, a careful assistant."
QUESTION = "HIDDEN-QUESTION: what is in this picture?"
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
ARGUMENTS = {"query": "HIDDEN-ARGUMENT"}
RESULT = "HIDDEN-RESULT: a cat"
REPLY = "HIDDEN-REPLY: it is a cat, I will look it up."
CALL = ("call_77", "lookup", json.dumps({"query": "HIDDEN-LOOKUP"}))


def conversation(path: str, stream: bool) -> dict[str, Any]:
    """The same conversation in the words of the endpoint ``path``."""
    arguments = json.dumps(ARGUMENTS)
    if path == OPENAI:
        return {"model": "gpt-4o", "stream": stream, "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [{"type": "text", "text": QUESTION},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
        ], "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]}
    if path == ANTHROPIC:
        return {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream, "system": SYSTEM, "messages": [
            {"role": "user", "content": [{"type": "text", "text": QUESTION}, {
                "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": ARGUMENTS}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": RESULT}]},
        ], "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}
    return {"model": "resp-gpt-5", "stream": stream, "instructions": SYSTEM, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION},
                                     {"type": "input_image", "image_url": f"data:image/png;base64,{IMAGE}"}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": arguments},
        {"type": "function_call_output", "call_id": "call_1", "output": RESULT},
    ], "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}


def compact(value: Any) -> str:
    """JSON as the log measures it: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def measure(text: str, hashed: bool) -> dict[str, Any]:
    shape: dict[str, Any] = {"chars": len(text)}
    if hashed:
        shape["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return shape


def expected_messages(hashed: bool) -> list[dict[str, Any]]:
    result = compact([{"text": RESULT, "type": "text"}])
    return [
        {"role": "user", "content": [{"type": "text", **measure(QUESTION, hashed)}, {"type": "image", **measure(IMAGE, hashed)}]},
        {"role": "assistant", "content": [{"type": "tool_use", **measure(compact(ARGUMENTS), hashed), "name": "lookup"}]},
        {"role": "user", "content": [{"type": "tool_result", **measure(result, hashed)}]},
    ]


def expected_response(hashed: bool, model: str) -> dict[str, Any]:
    return {
        "content": [{"type": "text", **measure(REPLY, hashed)},
                    {"type": "tool_use", **measure(compact(json.loads(CALL[2])), hashed), "name": "lookup"}],
        "stop_reason": "tool_use",
        "model": model,
    }


@pytest.fixture
def logging_router(start_router, upstream, tmp_path):
    """``logging_router(bodies)``: the base config's router with ``log.bodies``, its
    upstream answering every request with ``REPLY`` and a call to ``lookup``."""
    upstream.chooser = lambda kind, body: answer(kind, body, REPLY, [CALL])

    def start(bodies: str | None):
        config = base_config(upstream.url, str(tmp_path / f"{bodies}.jsonl"))
        if bodies is not None:
            config["log"]["bodies"] = bodies
        return start_router(config)

    return start


async def logged(router, path: str, stream: bool) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Send the conversation: the entry, its raw line, and what the dashboard feed published."""
    feed = router.runtime.events.subscribe()
    body = conversation(path, stream)
    if stream:
        response, _ = await router.post_stream(path, body)
    else:
        response = await router.post(path, body)
    assert response.code == 200
    (entry,) = router.log_entries()
    (line,) = open(router.log_path, encoding="utf-8").read().splitlines()
    (published,) = await feed.next_batch(timeout=5)
    return entry, line, json.loads(published)


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("bodies", ["none", "hash"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES], ids=KIND.get)
async def test_only_the_shape_is_logged_and_published(logging_router, path, bodies, stream):
    router = logging_router(bodies)
    entry, line, published = await logged(router, path, stream)
    hashed = bodies == "hash"

    assert "HIDDEN" not in line and IMAGE[:20] not in line  # not a word of the conversation
    assert published == entry  # the dashboard feed publishes the same line
    assert entry["bodies"] == bodies
    assert entry["system"] == measure(SYSTEM, hashed)
    assert entry["messages"] == expected_messages(hashed)
    assert entry["response"] == expected_response(hashed, entry["sent_model"])
    # what is not content stays
    assert entry["status"] == 200 and entry["stream"] is stream and entry["error"] is None
    assert entry["usage"]["output_tokens"] == 8 and entry["provider"] == {OPENAI: "oai", ANTHROPIC: "ant", RESPONSES: "oresp"}[path]
    assert entry["routing"]["matched"] == "route" and entry["attempts"][0]["status"] == 200


@pytest.mark.gen_test
@pytest.mark.parametrize("bodies", [None, "full"], ids=["default", "full"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES], ids=KIND.get)
async def test_full_logs_the_conversation_as_before(logging_router, path, bodies):
    router = logging_router(bodies)
    entry, line, published = await logged(router, path, stream=False)
    assert entry["bodies"] == "full" and published == entry
    assert entry["system"] == SYSTEM
    question, image = entry["messages"][0]["content"]
    assert question == {"type": "text", "text": QUESTION}
    assert image["type"] == "image" and image["data"] == f"<{len(IMAGE)} base64 chars>"
    (call,) = entry["messages"][1]["content"]
    assert (call["type"], call["name"], call["input"]) == ("tool_call", "lookup", ARGUMENTS)
    text, called = entry["response"]["content"]
    assert (text["type"], text["text"]) == ("text", REPLY) and called["input"] == {"query": "HIDDEN-LOOKUP"}


def test_full_builds_the_entry_as_before():
    """Nothing more per request: the fields are ENTRY_FIELDS themselves."""
    assert entry_fields("full") is ENTRY_FIELDS
    assert [name for name, _ in entry_fields("hash")] == [name for name, _ in ENTRY_FIELDS]


def test_another_value_is_refused_naming_log_bodies():
    raw = {"log": {"bodies": "partial"}, "providers": {"echo": {"kind": "echo"}}}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, environ={})
    assert str(refused.value) == "log.bodies: must be one of full, none, hash (got 'partial')"
    assert parse_config({**raw, "log": {}}, environ={}).log_bodies == "full"
