"""``continue_on_failure``: a stream that fails after its text has reached the
client is taken over by the next target that accepts an assistant prefill,
asked to go on from the text already sent; the client sees one well-formed
stream.  Where no target can continue (none takes a prefill, the answer is not
plain text, the continuation fails) the stream ends with the API's error
event, and the log says why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.answers import is_error_event, last_event, streamed_text
from tests.configs import every_model_to, provider
from tests.fake_upstream import FakeUpstream, Reply, anthropic_sse
from tests.upstream_faults import (
    attempts, error_body, error_event, logged_entry, request_body, stream_fault_after, with_content,
)
from tests.wire import ANTHROPIC, KIND, OPENAI
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate


def continuing(tmp_path, path: str, primary: FakeUpstream, backup: FakeUpstream, backup_kind: str = "anthropic",
               primary_options: dict[str, Any] | None = None) -> dict[str, Any]:
    return every_model_to(
        tmp_path,
        {"primary": provider(KIND[path], primary.url, **(primary_options or {})), "backup": provider(backup_kind, backup.url)},
        ["primary/model-a", "backup/model-b"],
        continue_on_failure=True,
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", ["error_event", "dropped", "reset", "stalled", "malformed_event", "ends_without_terminal_event"])
async def test_continue_on_failure_takes_the_stream_over(start_router, fakes, tmp_path, path, fault):
    kind = KIND[path]
    reply, _, options = stream_fault_after(fault, kind)
    primary, backup = fakes(), fakes()
    primary.then(reply)
    backup.then(Reply(sse=anthropic_sse(" four five six.", model="model-b")))
    router = start_router(continuing(tmp_path, path, primary, backup, primary_options=options))

    response, raw = await router.post_stream(path, request_body(path, stream=True, text="count"))

    assert response.code == 200
    assert validate(raw, kind) == []
    assert streamed_text(path, raw) == "one two three four five six."
    assert not is_error_event(path, last_event(raw))
    events = [json.loads(e.data) for e in SSEDecoder().feed(raw) if e.data != "[DONE]"]
    if path == ANTHROPIC:
        assert [e["type"] for e in events].count("message_start") == 1
        assert [e["type"] for e in events].count("content_block_start") == 1
    # The backup was asked to go on from the text the client already had.
    sent = backup.last.body
    assert sent["model"] == "model-b"
    assert sent["messages"][0]["role"] == "user"
    prefill = sent["messages"][-1]
    assert prefill["role"] == "assistant"
    assert prefill["content"] in ("one two three", [{"type": "text", "text": "one two three"}])
    entry = await logged_entry(router, response)
    assert entry["status"] == 200 and entry["error"] is None
    assert entry["continued"]["from"] == "primary/model-a" and entry["continued"]["to"] == "backup/model-b"
    assert entry["continued"]["after_chars"] == len("one two three ") and entry["continued"]["error"]
    assert attempts(entry) == [("primary", 200), ("backup", 200)]
    assert entry["attempts"][1]["continuation"] is True
    assert entry["provider"] == "backup"
    text = entry["response"]["content"]
    assert [b.get("text") for b in text] == ["one two three four five six."]


@pytest.mark.gen_test
async def test_continuation_extends_a_clients_own_prefill(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=with_content("anthropic"), drop=True))
    backup.then(Reply(sse=anthropic_sse("four", model="model-b")))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))
    body = request_body(ANTHROPIC, stream=True)
    body["messages"].append({"role": "assistant", "content": "Counting:"})

    response, raw = await router.post_stream(ANTHROPIC, body)

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw) == "one two three four"
    sent = backup.last.body["messages"]
    assert len(sent) == 2 and sent[-1]["role"] == "assistant"
    assert [b["text"] for b in sent[-1]["content"]] == ["Counting:", "one two three"]


@pytest.mark.gen_test
async def test_no_continuation_without_a_target_that_takes_a_prefill(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=with_content("anthropic"), drop=True))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup, backup_kind="openai"))

    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert backup.requests == []
    entry = await logged_entry(router, response)
    assert entry["continued"]["to"] is None
    assert "no later target takes a prefill: 'backup' (openai)" == entry["continued"]["reason"]
    assert entry["provider"] == "primary" and entry["status"] == 502


@pytest.mark.gen_test
async def test_a_continuation_that_fails_ends_the_stream_with_the_error(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=[*with_content("anthropic"), error_event("anthropic")]))
    backup.then(Reply(status=529, body=error_body("anthropic", "Overloaded", "overloaded_error")))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert streamed_text(ANTHROPIC, raw) == "one two three "
    entry = await logged_entry(router, response)
    assert entry["continued"]["to"] is None and entry["continued"]["reason"].startswith("continuation failed")
    assert attempts(entry) == [("primary", 200), ("backup", 529)]
    assert entry["provider"] == "primary" and entry["error"]


@pytest.mark.gen_test
async def test_only_text_is_continued(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    calls = anthropic_sse("Let me look.", [("toolu_1", "lookup", '{"q": "x"}')])
    primary.then(Reply(sse=calls[:-3], drop=True))  # cut inside the tool call
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert backup.requests == []
    entry = await logged_entry(router, response)
    assert entry["continued"]["reason"] == "only a text answer can be continued"


@pytest.mark.gen_test
async def test_continuation_after_a_closed_text_block_starts_a_new_block(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    events = anthropic_sse("one two three")
    primary.then(Reply(sse=events[:-2], drop=True))  # after content_block_stop, before message_delta
    backup.then(Reply(sse=anthropic_sse(" four", model="model-b")))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw) == "one two three four"
    starts = [json.loads(e.data) for e in SSEDecoder().feed(raw) if e.event == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]


@pytest.mark.gen_test
async def test_an_empty_continuation_still_makes_a_well_formed_stream(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=with_content("anthropic"), drop=True))
    backup.then(Reply(sse=anthropic_sse(None, model="model-b")))  # the model has nothing to add
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await router.post_stream(ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw) == "one two three "
    assert last_event(raw)["type"] == "message_stop"
