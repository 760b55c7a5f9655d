"""What the tests of faults, retries, load balancing, the breaker, the
concurrency limits and continuation are built from.

A test starts fake upstreams (the ``fakes`` fixture), a router configured by
``tests/configs.py`` (``primary_and_backup``, ``every_model_to``), scripts what
each upstream does (``scripted`` streams cut at ``head`` or ``with_content``,
``error_event``, ``error_body``), sends ``request_body`` with ``send``, reads
what the client got with ``tests/answers.py`` and what the log says with
``logged_entry``, ``logged_once`` and ``attempts``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tornado.httpclient import HTTPResponse

from tests.fake_upstream import ANTHROPIC_TEXT, OPENAI_TEXT, Reply, scripted_sse, sse_data, sse_event
from tests.waiting import poll
from tests.wire import body_for

TEXT = {"openai": OPENAI_TEXT, "anthropic": ANTHROPIC_TEXT}  # what a fake upstream of each kind answers unless scripted
SHORT = 0.5  # the timeouts of a test about a timeout
FAST_RETRIES = {"retry_backoff_s": 0.001, "retry_backoff_max_s": 0.001}


# --- what the client asks ---------------------------------------------------------------------


def request_body(path: str, stream: bool = False, text: str = "hello") -> dict[str, Any]:
    """What these tests send unless they say otherwise: ``text`` to ``any-model``
    (which the configs here route by their default)."""
    return body_for(path, "any-model", text, **({"stream": True} if stream else {}))


async def send(router, path: str, body: dict[str, Any]) -> tuple[HTTPResponse, bytes]:
    """POST ``body``: the response and the bytes of the answer, read as they
    stream in when the request asks for a stream."""
    if body.get("stream"):
        return await router.post_stream(path, body)
    response = await router.post(path, body)
    return response, response.body


def error_body(kind: str, message: str, error_type: str = "api_error") -> dict[str, Any]:
    """An error body as an upstream of ``kind`` sends it."""
    if kind == "anthropic":
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


async def health(router) -> dict[str, Any]:
    """``/health?verbose=1``: the providers' load and breakers."""
    response = await router.get("/health?verbose=1")
    assert response.code == 200 and response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


# --- what the log says ---------------------------------------------------------------------


async def logged_once(router, *responses: HTTPResponse) -> dict[str, dict[str, Any]]:
    """The log entries of ``responses``, by request id, asserting that each request
    is in the log exactly once and that nothing else is."""
    ids = [r.headers["x-request-id"] for r in responses]
    # A request is recorded when its handler finishes: at the latest just after its answer.
    entries = await poll(lambda: len(e := router.log_entries()) >= len(ids) and e, f"{len(ids)} log entries")
    counts = Counter(e["id"] for e in entries)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}, counts
    return {e["id"]: e for e in entries}


async def logged_entry(router, response: HTTPResponse) -> dict[str, Any]:
    """The log entry of ``response``, asserting it is the only entry in the log."""
    return (await logged_once(router, response))[response.headers["x-request-id"]]


def attempts(entry: dict[str, Any]) -> list[tuple[str, int | None]]:
    """A log entry's attempts as (provider, status), in the order they were made."""
    return [(a["provider"], a["status"]) for a in entry["attempts"]]


# --- upstream streams, whole and cut -------------------------------------------------------


def scripted(kind: str, text: str = "one two three four five six seven eight") -> list[bytes]:
    """The primary's (``model-a``) whole stream: eight words unless told otherwise."""
    return scripted_sse(kind, text, model="model-a")


def head(kind: str) -> list[bytes]:
    """The events before the first content: OpenAI's role chunk; Anthropic's message_start, ping, block start."""
    return scripted(kind)[:1] if kind == "openai" else scripted(kind)[:3]


def with_content(kind: str) -> list[bytes]:
    """The head and three text deltas: past the commit point."""
    return scripted(kind)[: len(head(kind)) + 3]


def error_event(kind: str, message: str = "Overloaded") -> bytes:
    """The error event an upstream of ``kind`` ends a failed stream with."""
    if kind == "anthropic":
        return sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})
    return sse_data({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def stream_fault_after(name: str, kind: str) -> tuple[Reply, int, dict[str, Any]]:
    """Failures after content reached the client: (what the primary does, the
    status of the error event, options for the primary)."""
    faults: dict[str, tuple[Reply, int, dict[str, Any]]] = {
        "error_event": (Reply(sse=[*with_content(kind), error_event(kind)]), 529 if kind == "anthropic" else 500, {}),
        "dropped": (Reply(sse=with_content(kind), drop=True), 502, {}),
        "reset": (Reply(sse=with_content(kind), drop=True, reset=True), 502, {}),
        "stalled": (Reply(sse=scripted(kind), stall_after=len(with_content(kind))), 504, {"idle_timeout_s": SHORT}),
        "malformed_event": (Reply(sse=[*with_content(kind), b"data: {\"choices\": [{\"del\n\n"]), 502, {}),
        "ends_without_terminal_event": (Reply(sse=with_content(kind)), 502, {}),
    }
    return faults[name]


# --- a client that leaves ------------------------------------------------------------------


async def leave_after_sending(router, path: str, body: dict[str, Any], until) -> None:
    """Send a request on a raw connection, wait until ``until()``, then hang up."""
    stream = await router.send_raw(path, body)
    await poll(until, "the moment to hang up")
    stream.close()
