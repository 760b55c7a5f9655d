"""The request story's last two facts, as the log has them: what each plugin
changed (``plugin_changes``: the hook, the JSON-pointer path, the values
before and after) and how long the request waited for a provider's
concurrency slot (``queue_ms``, in the entry and in the attempt that waited)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from tests.answers import streamed_text
from tests.configs import base_config, primary_and_backup
from tests.fake_upstream import OPENAI_TEXT, Reply
from tests.upstream_faults import leave_after_sending, logged_entry, logged_once, request_body, scripted, send
from tests.waiting import poll
from tests.wire import OPENAI, chat
from tornrouter.plugin_changes import CAPPED_CHARS

CARD = "4111111111111111"
REDACT = {"use": "redact", "settings": {"patterns": [r"\d{16}"]}}
STAMP = {"use": "tests.plugins_for_tests.Stamp"}
REWRITE = {"use": "tests.plugins_for_tests.Rewrite", "settings": {"text": "rewritten by a plugin"}}
IDLE = {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": "never"}}  # has every hook, changes nothing
TEXT_PATH = "/messages/0/content/0/text"


def with_plugins(upstream, tmp_path: Path, *plugins, bodies: str | None = None):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=list(plugins))
    if bodies is not None:
        config["log"]["bodies"] = bodies
    return config


# --- plugin_changes -----------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_each_hooks_change_is_logged_with_its_plugin_path_and_values(start_router, upstream, tmp_path, stream):
    router = start_router(with_plugins(upstream, tmp_path, IDLE, REDACT, STAMP, REWRITE))
    body = chat("to-openai", f"my card is {CARD}", stream=stream)

    if stream:
        response, raw = await router.post_stream(OPENAI, body)
        answered = streamed_text(OPENAI, raw)  # sent before PostResponse: the client has the upstream's text
    else:
        response = await router.post(OPENAI, body)
        assert json.loads(response.body)["choices"][0]["message"]["content"] == "rewritten by a plugin"
        answered = OPENAI_TEXT

    assert response.code == 200
    sent = upstream.requests[-1].body
    assert sent["messages"][0]["content"] == "my card is [REDACTED]" and sent["stamp"] == "yes"
    entry = await logged_entry(router, response)
    assert entry["plugin_changes"] == [
        {"plugin": "redact", "hook": "pre_request", "changes": [
            {"op": "replace", "path": TEXT_PATH, "before": f"my card is {CARD}", "after": "my card is [REDACTED]"},
        ]},
        # Changed in place, in the very dict the request came with: still seen.
        {"plugin": "stamp", "hook": "pre_request", "changes": [{"op": "add", "path": "/extra/stamp", "after": "yes"}]},
        {"plugin": "rewrite", "hook": "post_response", "changes": [
            {"op": "replace", "path": "/content/0/text", "before": answered, "after": "rewritten by a plugin"},
        ]},
    ]  # boom ran every hook and changed nothing: it is not there


@pytest.mark.gen_test
async def test_a_long_text_is_capped_in_the_log_not_upstream(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, REDACT))
    prompt = f"my card is {CARD} " + "x" * 3000

    response = await router.post(OPENAI, chat("to-openai", prompt))

    assert response.code == 200
    assert upstream.requests[-1].body["messages"][0]["content"] == prompt.replace(CARD, "[REDACTED]")
    [step] = (await logged_entry(router, response))["plugin_changes"]
    [change] = step["changes"]
    assert change["truncated"] is True
    assert change["before"] == prompt[:CAPPED_CHARS] + "…"
    assert change["after"] == prompt.replace(CARD, "[REDACTED]")[:CAPPED_CHARS] + "…"


@pytest.mark.gen_test
@pytest.mark.parametrize("bodies", ["none", "hash"])
async def test_without_bodies_a_change_keeps_where_not_what(start_router, upstream, tmp_path, bodies):
    router = start_router(with_plugins(upstream, tmp_path, REDACT, REWRITE, bodies=bodies))
    before, after = f"my card is {CARD}", "my card is [REDACTED]"

    response = await router.post(OPENAI, chat("to-openai", before))

    assert response.code == 200
    entry = await logged_entry(router, response)

    def measure(text: str) -> dict:
        shape = {"chars": len(text)}
        if bodies == "hash":
            shape["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        return shape

    assert entry["plugin_changes"] == [
        {"plugin": "redact", "hook": "pre_request", "changes": [
            {"op": "replace", "path": TEXT_PATH, "before": measure(before), "after": measure(after)},
        ]},
        {"plugin": "rewrite", "hook": "post_response", "changes": [
            {"op": "replace", "path": "/content/0/text", "before": measure(OPENAI_TEXT),
             "after": measure("rewritten by a plugin")},
        ]},
    ]
    line = Path(router.log_path).read_text()
    assert CARD not in line and "[REDACTED]" not in line and "rewritten" not in line


@pytest.mark.gen_test
async def test_no_plugin_or_none_that_changed_anything_logs_null(start_router, upstream, tmp_path):
    bare = start_router(with_plugins(upstream, tmp_path))
    idle = start_router(with_plugins(upstream, tmp_path / "idle", IDLE, REDACT))  # nothing for redact to find

    for router in (bare, idle):
        response = await router.post(OPENAI, chat("to-openai", "nothing secret here"))
        assert response.code == 200
        assert (await logged_entry(router, response))["plugin_changes"] is None


@pytest.mark.gen_test
async def test_a_change_json_cannot_hold_is_logged_as_text_not_a_failure(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.Huge"}))

    response = await router.post(OPENAI, chat("anything", "hello"))  # to the echo provider

    assert response.code == 200
    [step] = (await logged_entry(router, response))["plugin_changes"]
    [change] = step["changes"]
    assert (step["plugin"], change["op"], change["path"]) == ("huge", "replace", "/")
    assert "'extra': {'n': 1180591620717411303424}" in change["after"] and change["before"]["extra"] == {}


@pytest.mark.gen_test
async def test_the_dry_run_explains_the_changes_the_log_records(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, REDACT, STAMP))

    response = await router.post(OPENAI, chat("to-openai", f"my card is {CARD}"), {"x-tornrouter-dry-run": "1"})

    assert response.code == 200
    entry = await logged_entry(router, response)
    assert entry["dry_run"] is True and [s["plugin"] for s in entry["plugin_changes"]] == ["redact", "stamp"]
    assert json.loads(response.body)["changes"] == [c for step in entry["plugin_changes"] for c in step["changes"]]


# --- queue_ms ------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_request_waiting_for_a_slot_logs_its_queue_time_apart(start_router, fakes, tmp_path, stream):
    """``max_concurrent: 1`` and an upstream that holds the first answer: the
    second request waits for the slot; its wait is ``queue_ms``, in the entry
    and in its attempt, and is neither the attempt's duration nor overhead."""
    primary = fakes()
    gate = asyncio.Event()
    held = scripted("openai") if stream else None
    primary.then(Reply(sse=held, gate=gate), Reply(sse=held))
    router = start_router(primary_and_backup(tmp_path, OPENAI, primary.url, None,
                                             primary_options={"max_concurrent": 1, "max_queue": 4}))
    ask = lambda: asyncio.ensure_future(send(router, OPENAI, request_body(OPENAI, stream=stream)))  # noqa: E731

    first = ask()
    await poll(lambda: len(primary.requests) == 1, "the first request upstream")
    second = ask()
    await poll(lambda: router.runtime.providers["primary"].limit.queued == 1, "the second request to queue")
    gate.set()
    (first, _), (second, _) = await first, await second

    assert first.code == 200 and second.code == 200
    entries = await logged_once(router, first, second)
    alone, queued = entries[first.headers["x-request-id"]], entries[second.headers["x-request-id"]]
    assert alone["queue_ms"] is None and "queue_ms" not in alone["attempts"][0]
    assert queued["queue_ms"] > 0
    [attempt] = queued["attempts"]
    assert attempt["queue_ms"] == queued["queue_ms"]
    # It waited while the first was upstream, and each part of its time is counted once.
    assert queued["queue_ms"] <= alone["duration_ms"]
    rounding = 0.3  # three figures, each rounded to 0.1 ms or finer
    assert queued["queue_ms"] + attempt["duration_ms"] + queued["overhead_ms"] <= queued["duration_ms"] + rounding


@pytest.mark.gen_test
async def test_a_client_who_leaves_while_queued_has_its_wait_logged(start_router, fakes, tmp_path):
    primary = fakes()
    gate = asyncio.Event()
    primary.then(Reply(sse=scripted("openai"), gate=gate))
    router = start_router(primary_and_backup(tmp_path, OPENAI, primary.url, None,
                                             primary_options={"max_concurrent": 1, "max_queue": 4}))
    limit = router.runtime.providers["primary"].limit
    first = asyncio.ensure_future(send(router, OPENAI, request_body(OPENAI, stream=True)))
    await poll(lambda: len(primary.requests) == 1, "the first request upstream")

    await leave_after_sending(router, OPENAI, request_body(OPENAI, stream=True), lambda: limit.queued == 1)
    await poll(lambda: limit.queued == 0, "the leaver to leave the queue")
    gate.set()
    first, _ = await first

    assert first.code == 200
    entries = await poll(lambda: len(e := router.log_entries()) == 2 and e, "both entries")
    [left] = [e for e in entries if e["id"] != first.headers["x-request-id"]]
    assert left["cancelled"] is True and left["attempts"] == []  # it never reached the upstream
    assert 0 < left["queue_ms"] <= left["duration_ms"]
    assert len(primary.requests) == 1


@pytest.mark.gen_test
async def test_without_max_concurrent_nothing_is_queued(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path))

    responses = await asyncio.gather(*(router.post(OPENAI, chat("to-openai", f"hi {i}")) for i in range(3)))

    entries = await logged_once(router, *responses)
    assert [e["queue_ms"] for e in entries.values()] == [None] * 3
    assert not any("queue_ms" in a for e in entries.values() for a in e["attempts"])
