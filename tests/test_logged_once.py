"""Every handled request is logged exactly once, whatever fails on its way:
each stage is made to fail in turn, and the request log and the dashboard's
event bus must each hold one entry for the request, with its status and error.

Failures come from real misbehaving parts (plugins and a classifier that raise,
or that leave the answer in a shape the router cannot read; an upstream that
fails), never from patching the router."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.configs import base_config
from tests.fake_upstream import Reply
from tests.wire import OPENAI


@dataclass
class Case:
    plugin: dict[str, Any] | None = None
    classifier: str | None = None
    model: str = "gpt-4o"
    stream: bool = False
    upstream: Reply | None = None
    status: int = 200  # what the client gets, and the log says
    error: str | None = None  # in the log entry's error
    shown: str | None = None  # the client's error message, when it is not the log's (an upstream's own error)
    entry_error: str | None = None  # a field that could not be built
    messages: list[Any] | None = field(default_factory=lambda: [{"role": "user", "content": [{"type": "text", "text": "hello"}]}])
    expect_logs: list[tuple[str, str]] = field(default_factory=list)  # tracebacks the failure rightly logs


def boom(hook: str) -> dict[str, Any]:
    return {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": hook}}


def corrupt(hook: str, what: str) -> dict[str, Any]:
    return {"use": "tests.plugins_for_tests.Corrupt", "settings": {"hook": hook, "what": what}}


CASES = {
    "start hook raises": Case(boom("on_start"), status=500, error="plugin 'boom' failed: boom in on_start"),
    "classifier raises": Case(classifier="tests.plugins_for_tests.FailingClassifier", status=500,
                              error="classifier 'FailingClassifier' failed: cannot tell"),
    "pre-routing hook raises": Case(boom("pre_request"), status=500, error="plugin 'boom' failed: boom in pre_request"),
    "no route": Case(model="nowhere", status=400, error="no provider configured for model 'nowhere'"),
    "upstream fails": Case(upstream=Reply(status=500, body={"error": {"message": "down", "type": "server_error"}}),
                           status=500, error="provider 'oai': upstream returned 500: down", shown="down"),
    "upstream fails mid-stream": Case(stream=True, upstream=Reply(sse=[b'data: {"oops'], drop=True),
                                      status=502, error="provider 'oai'"),
    "post-response hook raises": Case(boom("post_response"),
                                      expect_logs=[("tornrouter.plugins", "plugin 'boom' post_response hook failed")]),
    "end hook raises": Case(boom("on_end"), expect_logs=[("tornrouter.plugins", "plugin 'boom' on_end hook failed")]),
    "start hook answers with garbage": Case(
        corrupt("on_start", "response"), status=500, error="plugin 'corrupt' failed: response: expected a ChatResponse, got str",
    ),
    "answer replaced by garbage": Case(
        corrupt("post_response", "response"), status=500, error="plugin 'corrupt' failed: response: expected a ChatResponse, got str",
    ),
    "usage broken after a stream": Case(
        corrupt("on_end", "usage"), stream=True, error="plugin 'corrupt' failed: response.usage: expected a Usage, got NoneType",
    ),
    "answer JSON cannot hold after a stream": Case(
        corrupt("on_end", "unserialisable"), stream=True,
        error="plugin 'corrupt' failed: response.content.0.text: expected a string, got dict",
    ),
    # The request is checked only before it is sent: what an End hook does to it reaches the log alone.
    "request unreadable at the end": Case(corrupt("on_end", "messages"), messages=None, entry_error="messages: AttributeError"),
    "request JSON cannot hold at the end": Case(corrupt("on_end", "tags"), entry_error="routing: TypeError"),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_failure_at_any_stage_is_logged_once(case, start_router, upstream, tmp_path, log_guard):
    for logger, pattern in case.expect_logs:
        log_guard.expect(logger, pattern)
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"), router={"routes": [{"model": "gpt-*", "to": "oai"}]})
    config["plugins"] = [case.plugin] if case.plugin else []
    config["classifiers"] = [{"use": case.classifier}] if case.classifier else []
    router = start_router(config)
    feed = router.runtime.events.subscribe()
    if case.upstream is not None:
        upstream.then(case.upstream)

    body = {"model": case.model, "messages": [{"role": "user", "content": "hello"}], "stream": case.stream}
    response = await router.post(OPENAI, body)

    (entry,) = router.log_entries()
    assert entry["id"] == response.headers["x-request-id"]
    assert entry["status"] == case.status
    if not case.stream:  # a stream's status is in its 200 head; a failure shows in its events and in the log
        assert response.code == case.status
        if case.status >= 400:
            assert json.loads(response.body)["error"]["message"] == (case.shown or case.error)
    if case.error is None:
        assert entry["error"] is None
    else:
        assert entry["error"].startswith(case.error)
    if case.entry_error is None:
        assert entry["entry_error"] is None
    else:
        assert case.entry_error in entry["entry_error"]
    assert entry["messages"] == case.messages  # what could be built is there
    (published,) = await feed.next_batch(timeout=5)
    assert json.loads(published) == entry
