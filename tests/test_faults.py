"""Fault injection: upstreams that misbehave on cue, and what the client gets.

Every misbehaviour an upstream can show (refused, reset, cut short, an error
status with or without ``Retry-After``, silence before the first byte or in
mid-stream, a body that is not JSON, an HTML error page, an answer far too
large, a stream without its end) is played by a real loopback server
(``tests/fake_upstream.py``) against a real router, with and without a fallback
target.  For each the client gets the fallback's answer or a native error with
the right status, the ``x-tornrouter-*`` headers name the target that served
(or was tried last), and the request is in the log exactly once with its
``attempts``.  Then the safety nets one by one: retries, statuses that are not
retried, ``Retry-After``, weights, the circuit breaker, the concurrency limits,
the router-wide cap, the streaming commit point, ``continue_on_failure``, and
a leak check over a few hundred faulty requests.

Timeouts are configured short where a test is about a timeout; nothing asserts
how long anything took, and whatever happens after the client has its answer
is polled for against a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse
from tornado.tcpclient import TCPClient
from tornado.testing import bind_unused_port

from tests.fake_upstream import (
    ANTHROPIC_TEXT,
    OPENAI_TEXT,
    FakeUpstream,
    Reply,
    anthropic_sse,
    nginx_error_page,
    openai_sse,
    sse_data,
    sse_event,
)
from tornrouter.dispatch import Dispatcher
from tornrouter.config import ProviderConfig
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
KIND = {OPENAI: "openai", ANTHROPIC: "anthropic"}  # the client's API, and the primary's (same format)
TEXT = {"openai": OPENAI_TEXT, "anthropic": ANTHROPIC_TEXT}
DEADLINE = 10.0  # seconds to wait for anything that happens after the client has its answer
SHORT = 0.5  # the timeouts of a test about a timeout


# --- servers and config ------------------------------------------------------------


@pytest.fixture
def fakes(io_loop):
    """``fakes()`` -> one more fake upstream on loopback (all stopped after the test)."""
    started: list[FakeUpstream] = []

    def start() -> FakeUpstream:
        fake = FakeUpstream().start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        io_loop.run_sync(fake.stop)


def dead_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    sock, port = bind_unused_port()
    sock.close()
    return f"http://127.0.0.1:{port}"


def provider(kind: str, url: str, **options: Any) -> dict[str, Any]:
    return {"kind": kind, "base_url": url + "/v1" if kind == "openai" else url, "api_key": f"sk-{kind}-SECRET", **options}


def config(tmp_path, providers: dict[str, Any], to: Any, *, server: dict[str, Any] | None = None, **targets: Any) -> dict[str, Any]:
    """Every model goes to ``to`` (a target or a list), with ``targets`` options (strategy...)."""
    return {
        "server": {"dashboard": False, **(server or {})},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": providers,
        "router": {"default": {"to": to, **targets}},
    }


def primary_and_backup(tmp_path, path: str, primary_url: str, backup_url: str | None, *,
                       primary_options: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
                       **targets: Any) -> dict[str, Any]:
    """``primary`` speaks the client's API; ``backup`` (when given) the other one."""
    kind = KIND[path]
    other = "anthropic" if kind == "openai" else "openai"
    providers = {"primary": provider(kind, primary_url, **(primary_options or {}))}
    to: list[str] = ["primary/model-a"]
    if backup_url is not None:
        providers["backup"] = provider(other, backup_url)
        to.append("backup/model-b")
    return config(tmp_path, providers, to, server=server, **targets)


def request_body(path: str, stream: bool = False, text: str = "hello") -> dict[str, Any]:
    body: dict[str, Any] = {"model": "any-model", "messages": [{"role": "user", "content": text}]}
    if path == ANTHROPIC:
        body["max_tokens"] = 100
    if stream:
        body["stream"] = True
    return body


async def post_stream(router, path: str, body: dict[str, Any]) -> tuple[HTTPResponse, bytes]:
    """POST and collect the answer as it streams in."""
    chunks: list[bytes] = []
    response = await router.client.fetch(
        router.url + path, method="POST", body=json.dumps(body), raise_error=False, request_timeout=20,
        headers={"Content-Type": "application/json"}, streaming_callback=chunks.append,
    )
    return response, b"".join(chunks)


def error_body(kind: str, message: str, error_type: str = "api_error") -> dict[str, Any]:
    if kind == "anthropic":
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def native_error(path: str, response: HTTPResponse) -> str:
    """The message of an error body in the endpoint's own shape (asserting the shape)."""
    body = json.loads(response.body)
    if path == ANTHROPIC:
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
        return body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]["message"]


def answer_text(path: str, response: HTTPResponse) -> str:
    body = json.loads(response.body)
    if path == ANTHROPIC:
        return "".join(block.get("text", "") for block in body["content"])
    return body["choices"][0]["message"]["content"]


def streamed_text(path: str, raw: bytes) -> str:
    out = []
    for event in SSEDecoder().feed(raw):
        if event.data == "[DONE]":
            continue
        payload = json.loads(event.data)
        if path == ANTHROPIC and payload.get("type") == "content_block_delta":
            out.append(payload["delta"].get("text", ""))
        elif path == OPENAI:
            out.extend(choice["delta"].get("content") or "" for choice in payload.get("choices") or ())
    return "".join(out)


def last_event(raw: bytes) -> dict[str, Any]:
    events = [e for e in SSEDecoder().feed(raw) if e.data != "[DONE]"]
    return json.loads(events[-1].data)


def is_error_event(path: str, payload: dict[str, Any]) -> bool:
    return payload.get("type") == "error" if path == ANTHROPIC else "error" in payload


async def logged_once(router, *responses: HTTPResponse) -> dict[str, dict[str, Any]]:
    """The log entries of ``responses``, by request id, asserting that each request
    is in the log exactly once and that nothing else is."""
    ids = [r.headers["x-request-id"] for r in responses]
    deadline = time.monotonic() + DEADLINE
    while True:  # a request is recorded when its handler finishes: at the latest just after its answer
        entries = router.log_entries()
        if len(entries) >= len(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    counts = Counter(e["id"] for e in entries)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}, counts
    return {e["id"]: e for e in entries}


def attempts(entry: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(a["provider"], a["status"]) for a in entry["attempts"]]


def served_by(response: HTTPResponse, provider_name: str, model: str) -> None:
    assert response.headers["x-tornrouter-provider"] == provider_name
    assert response.headers["x-tornrouter-model"] == model


# --- non-streamed: every misbehaviour, with and without a fallback -----------------

HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
HUGE_LIMIT = 1024 * 1024  # server.max_response_bytes in the tests that use it
RETRY_AFTER = {"Retry-After": "0"}


def nonstream_fault(name: str, kind: str) -> tuple[Reply | None, int, dict[str, Any]]:
    """(what the primary does, the status the client gets without a fallback,
    options for the primary).  None: nothing listens (connection refused)."""
    error = lambda status: Reply(status=status, body=error_body(kind, f"upstream says {status}"))  # noqa: E731
    faults: dict[str, tuple[Reply | None, int, dict[str, Any]]] = {
        "refused": (None, 502, {}),
        "reset_before_answer": (Reply(drop=True, reset=True), 502, {}),
        "closed_before_answer": (Reply(drop=True), 502, {}),
        "reset_mid_body": (Reply(cut_after=40, reset=True), 502, {}),
        "cut_mid_body": (Reply(cut_after=40), 502, {}),
        "500": (error(500), 502, {}),
        "502": (error(502), 502, {}),
        "503": (error(503), 502, {}),
        "529": (error(529), 502, {}),
        "503_retry_after": (Reply(status=503, body=error_body(kind, "busy"), headers={"Retry-After": "7"}), 502, {}),
        "429": (Reply(status=429, body=error_body(kind, "slow down", "rate_limit_error")), 429, {}),
        "429_retry_after": (Reply(status=429, body=error_body(kind, "slow down", "rate_limit_error"), headers={"Retry-After": "7"}), 429, {}),
        "slow_first_byte": (Reply(delay=60), 504, {"timeout_s": SHORT}),
        "malformed_json": (Reply(body=b'{"id": "chatcmpl-1", "choices": [{"message": {"rol'), 502, {}),
        "html_error_page": (Reply(status=502, body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
        "html_instead_of_json": (Reply(body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
        "far_too_large": (Reply(body=b'{"pad": "' + b"x" * (2 * HUGE_LIMIT) + b'"}'), 502, {}),
    }
    return faults[name]


NONSTREAM_FAULTS = [
    "refused", "reset_before_answer", "closed_before_answer", "reset_mid_body", "cut_mid_body",
    "500", "502", "503", "529", "503_retry_after", "429", "429_retry_after",
    "slow_first_byte", "malformed_json", "html_error_page", "html_instead_of_json", "far_too_large",
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", NONSTREAM_FAULTS)
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_nonstreamed_fault(start_router, fakes, tmp_path, path, fault, with_fallback):
    kind = KIND[path]
    reply, status, options = nonstream_fault(fault, kind)
    primary, backup = fakes(), fakes()
    if reply is not None:
        primary.then(reply)
    router = start_router(primary_and_backup(
        tmp_path, path, primary.url if reply else dead_url(), backup.url if with_fallback else None,
        primary_options=options, server={"max_response_bytes": HUGE_LIMIT},
    ))

    response = await router.post(path, request_body(path))

    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    if with_fallback:
        assert response.code == 200, response.body
        assert answer_text(path, response) == TEXT["anthropic" if kind == "openai" else "openai"]
        served_by(response, "backup", "model-b")
        assert attempts(entry) == [("primary", entry["attempts"][0]["status"]), ("backup", 200)]
        assert entry["attempts"][0]["error"]
        assert entry["status"] == 200 and entry["error"] is None
    else:
        assert response.code == status, response.body
        message = native_error(path, response)
        assert "primary" in message
        assert "<" not in message  # a proxy's page is described, never quoted
        served_by(response, "primary", "model-a")  # the target tried last
        assert len(entry["attempts"]) == 1 and entry["attempts"][0]["error"]
        assert entry["status"] == status and entry["error"]
        if fault.endswith("retry_after"):
            assert response.headers["Retry-After"] == "7"
        if fault == "far_too_large":
            assert f"answer larger than server.max_response_bytes ({HUGE_LIMIT} bytes)" in message
    assert "SECRET" not in response.body.decode() and "SECRET" not in json.dumps(entry)
    if reply is not None:
        assert len(primary.requests) == 1


# --- streamed: the commit point --------------------------------------------------------


def scripted(kind: str, text: str = "one two three four five six seven eight") -> list[bytes]:
    return openai_sse(text, model="model-a") if kind == "openai" else anthropic_sse(text, model="model-a")


def head(kind: str) -> list[bytes]:
    """The events before the first content: OpenAI's role chunk; Anthropic's message_start, ping, block start."""
    return scripted(kind)[:1] if kind == "openai" else scripted(kind)[:3]


def with_content(kind: str) -> list[bytes]:
    """The head and three text deltas: past the commit point."""
    return scripted(kind)[: len(head(kind)) + 3]


def error_event(kind: str, message: str = "Overloaded") -> bytes:
    if kind == "anthropic":
        return sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})
    return sse_data({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def stream_fault_before(name: str, kind: str) -> tuple[Reply | None, int, dict[str, Any]]:
    """Failures before the first content: (what the primary does, the status of the
    HTTP error the client gets without a fallback, options for the primary)."""
    faults: dict[str, tuple[Reply | None, int, dict[str, Any]]] = {
        "refused": (None, 502, {}),
        "error_event_first": (Reply(sse=[*head(kind), error_event(kind)]), 502, {}),
        "529": (Reply(status=529, body=error_body(kind, "Overloaded", "overloaded_error")), 502, {}),
        "429_retry_after": (Reply(status=429, body=error_body(kind, "slow down", "rate_limit_error"), headers={"Retry-After": "7"}), 429, {}),
        "drop_before_content": (Reply(sse=head(kind), drop=True), 502, {}),
        "reset_before_content": (Reply(sse=head(kind), drop=True, reset=True), 502, {}),
        "slow_first_byte": (Reply(sse=scripted(kind), stall_after=0), 504, {"first_byte_timeout_s": SHORT}),
        "stall_before_content": (Reply(sse=scripted(kind), stall_after=len(head(kind))), 504, {"idle_timeout_s": SHORT}),
        "malformed_first_event": (Reply(sse=[b"data: {\"id\": \"chatcmpl-1\", \"choi\n\n"]), 502, {}),
        "ends_without_content": (Reply(sse=head(kind)), 502, {}),
        "html_instead_of_sse": (Reply(body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
        "far_too_large": (Reply(sse=[*head(kind), b": " + b"x" * (2 * HUGE_LIMIT) + b"\n\n"]), 502, {}),
    }
    return faults[name]


STREAM_FAULTS_BEFORE = [
    "refused", "error_event_first", "529", "429_retry_after", "drop_before_content", "reset_before_content",
    "slow_first_byte", "stall_before_content", "malformed_first_event", "ends_without_content",
    "html_instead_of_sse", "far_too_large",
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", STREAM_FAULTS_BEFORE)
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_stream_fault_before_content(start_router, fakes, tmp_path, path, fault, with_fallback):
    """Nothing has reached the client yet: failed over to one clean stream, or an HTTP error."""
    kind = KIND[path]
    reply, status, options = stream_fault_before(fault, kind)
    primary, backup = fakes(), fakes()
    if reply is not None:
        primary.then(reply)
    router = start_router(primary_and_backup(
        tmp_path, path, primary.url if reply else dead_url(), backup.url if with_fallback else None,
        primary_options=options, server={"max_response_bytes": HUGE_LIMIT},
    ))

    response, raw = await post_stream(router, path, request_body(path, stream=True))

    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    if with_fallback:
        assert response.code == 200, raw
        assert response.headers["Content-Type"] == "text/event-stream"
        assert validate(raw, KIND[path]) == []
        assert not is_error_event(path, last_event(raw))
        assert streamed_text(path, raw).startswith(TEXT["anthropic" if kind == "openai" else "openai"])
        served_by(response, "backup", "model-b")
        assert attempts(entry)[1:] == [("backup", 200)] and attempts(entry)[0][0] == "primary"
        assert entry["status"] == 200 and entry["error"] is None
    else:
        assert response.code == status, raw
        response._body = raw  # the error arrived through the streaming callback
        assert "primary" in native_error(path, response)
        served_by(response, "primary", "model-a")
        assert entry["status"] == status and entry["error"]
        if fault.endswith("retry_after"):
            assert response.headers["Retry-After"] == "7"
    if reply is not None:
        assert len(primary.requests) == 1


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


STREAM_FAULTS_AFTER = ["error_event", "dropped", "reset", "stalled", "malformed_event", "ends_without_terminal_event"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", STREAM_FAULTS_AFTER)
async def test_stream_fault_after_content(start_router, fakes, tmp_path, path, fault):
    """Content has reached the client: the stream ends with the API's error event
    (a fallback target is not tried: without continue_on_failure a stream is not re-run)."""
    kind = KIND[path]
    reply, status, options = stream_fault_after(fault, kind)
    primary, backup = fakes(), fakes()
    primary.then(reply)
    router = start_router(primary_and_backup(tmp_path, path, primary.url, backup.url, primary_options=options))

    response, raw = await post_stream(router, path, request_body(path, stream=True))

    assert response.code == 200
    assert validate(raw, KIND[path]) == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    served_by(response, "primary", "model-a")
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert attempts(entry) == [("primary", 200)]
    assert entry["status"] == status and entry["error"]
    assert backup.requests == []


# --- what the client hears of an upstream's error body --------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_an_error_page_is_summarised_and_kept_in_the_log(start_router, fakes, tmp_path, path, stream):
    """A proxy's HTML page instead of the API's error: the client gets one line
    in its own API's shape, with no markup; the log keeps the page, capped, with
    the key it quotes redacted."""
    key = f"sk-{KIND[path]}-SECRET"
    page = nginx_error_page(comment=f"Authorization: Bearer {key}")
    primary = fakes()
    primary.then(Reply(status=502, body=page, headers={"Content-Type": "text/html"}))
    router = start_router(primary_and_backup(tmp_path, path, primary.url, None))

    response, raw = await (post_stream if stream else _post)(router, path, request_body(path, stream=stream))

    assert response.code == 502 and response.headers["Content-Type"] == "application/json"
    response._body = raw
    summary = "provider 'primary': upstream returned 502 with a text/html page: \"502 Bad Gateway\""
    assert native_error(path, response) == summary
    assert json.loads(raw)["error"]["type"] == ("server_error" if path == OPENAI else "api_error")
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    (attempt,) = entry["attempts"]
    assert attempt["status"] == 502 and attempt["error"] == entry["error"] == summary
    assert attempt["upstream_body"] == page.replace(key.encode(), b"***")[:4096].decode() + "…"
    assert "SECRET" not in raw.decode() and "SECRET" not in json.dumps(entry)


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_an_apis_own_error_keeps_its_type_and_message(start_router, fakes, tmp_path, path, stream):
    body = error_body(KIND[path], "prompt is too long", "invalid_request_error")
    primary = fakes()
    primary.then(Reply(status=400, body=body))
    router = start_router(primary_and_backup(tmp_path, path, primary.url, None))

    response, raw = await (post_stream if stream else _post)(router, path, request_body(path, stream=stream))

    assert response.code == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "provider 'primary': upstream returned 400: prompt is too long"
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert entry["attempts"][0]["upstream_body"] == json.dumps(body)


# --- retries -----------------------------------------------------------------------------


FAST_RETRIES = {"retry_backoff_s": 0.001, "retry_backoff_max_s": 0.001}


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("retries", [1, 3])
async def test_n_retries_make_n_plus_one_attempts_then_fallback(start_router, fakes, tmp_path, retries, stream):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=503, body=error_body("openai", "busy"))] * (retries + 1))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": retries, **FAST_RETRIES}
    ))

    response, _ = await (post_stream if stream else _post)(router, OPENAI, request_body(OPENAI, stream=stream))

    assert response.code == 200
    served_by(response, "backup", "model-b")
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert attempts(entry) == [("primary", 503)] * (retries + 1) + [("backup", 200)]
    assert len(primary.requests) == retries + 1 and len(backup.requests) == 1


async def _post(router, path: str, body: dict[str, Any]) -> tuple[HTTPResponse, bytes]:
    response = await router.post(path, body)
    return response, response.body


@pytest.mark.gen_test
async def test_a_retry_that_succeeds_stays_on_the_same_target(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(drop=True, reset=True), Reply(status=502, body=error_body("openai", "bad gateway")))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": 2, **FAST_RETRIES}
    ))

    response = await router.post(OPENAI, request_body(OPENAI))

    assert response.code == 200 and answer_text(OPENAI, response) == OPENAI_TEXT
    served_by(response, "primary", "model-a")
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert attempts(entry) == [("primary", 599), ("primary", 502), ("primary", 200)]
    assert backup.requests == []


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_client_errors_are_neither_retried_nor_failed_over(start_router, fakes, tmp_path, status, stream):
    primary, backup = fakes(), fakes()
    primary.then(Reply(status=status, body=error_body("openai", f"refused with {status}", "invalid_request_error")))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": 3, **FAST_RETRIES}
    ))

    response, raw = await (post_stream if stream else _post)(router, OPENAI, request_body(OPENAI, stream=stream))

    assert response.code == status
    response._body = raw
    assert f"refused with {status}" in native_error(OPENAI, response)
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert attempts(entry) == [("primary", status)]
    assert len(primary.requests) == 1 and backup.requests == []


@pytest.mark.gen_test
@pytest.mark.parametrize("status", [429, 503, 529])
async def test_retry_after_is_honoured_up_to_the_cap(start_router, fakes, tmp_path, status):
    """An hour's Retry-After under a cap of 50 ms: the retries happen (and the
    request completes within the client's timeout), then the fallback answers."""
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=status, body=error_body("openai", "later"), headers={"Retry-After": "3600"})] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"retries": 2, "retry_backoff_s": 3600, "retry_backoff_max_s": 3600, "retry_after_max_s": 0.05},
    ))

    response = await router.post(OPENAI, request_body(OPENAI))

    assert response.code == 200
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert attempts(entry) == [("primary", status)] * 3 + [("backup", 200)]


def test_backoff_schedule():
    """Retry-After (seconds or an HTTP date) wins, capped; nonsense falls back to
    exponential backoff with jitter, itself capped."""
    dispatcher = Dispatcher(random.Random(1))
    config = ProviderConfig(name="p", kind="openai", retry_backoff_s=0.5, retry_backoff_max_s=4.0, retry_after_max_s=30.0)
    assert dispatcher.backoff(config, 0, "2") == 2.0
    assert dispatcher.backoff(config, 0, "0") == 0.0
    assert dispatcher.backoff(config, 5, "3600") == 30.0
    assert dispatcher.backoff(config, 0, "inf") == 30.0
    assert dispatcher.backoff(config, 0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date gone by: now
    assert dispatcher.backoff(config, 0, "Fri, 01 Jan 2100 00:00:00 GMT") == 30.0
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        for retry_after in (None, "", "soon", "nan", "-5"):
            delay = dispatcher.backoff(config, attempt, retry_after)
            assert ceiling / 2 <= delay <= ceiling, (attempt, retry_after, delay)


# --- loadbalance ------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_loadbalance_follows_the_weights(start_router, fakes, tmp_path):
    heavy, light = fakes(), fakes()
    router = start_router(config(
        tmp_path,
        {"heavy": provider("openai", heavy.url), "light": provider("openai", light.url)},
        [{"target": "heavy", "weight": 3}, {"target": "light", "weight": 1}],
        strategy="loadbalance",
    ))

    responses = []
    for _ in range(10):  # 200 requests, 20 at a time
        responses += await asyncio.gather(*(router.post(OPENAI, request_body(OPENAI)) for _ in range(20)))

    assert all(r.code == 200 for r in responses)
    served = Counter(r.headers["x-tornrouter-provider"] for r in responses)
    assert served["heavy"] == len(heavy.requests) and served["light"] == len(light.requests)
    # Expected 150:50; the band is five standard deviations (sd ~ 6.1) wide on each side.
    assert 120 <= len(heavy.requests) <= 180, served
    await logged_once(router, *responses)


@pytest.mark.gen_test
async def test_loadbalance_fails_over_to_the_other_target(start_router, fakes, tmp_path):
    good = fakes()
    router = start_router(config(
        tmp_path,
        {"down": provider("openai", dead_url()), "good": provider("openai", good.url)},
        [{"target": "down", "weight": 1}, {"target": "good", "weight": 1}],
        strategy="loadbalance",
    ))

    responses = await asyncio.gather(*(router.post(OPENAI, request_body(OPENAI)) for _ in range(20)))

    assert all(r.code == 200 and r.headers["x-tornrouter-provider"] == "good" for r in responses)
    entries = await logged_once(router, *responses)
    orders = Counter(tuple(attempts(e)) for e in entries.values())
    assert set(orders) <= {(("good", 200),), (("down", 599), ("good", 200))}, orders
    assert len(orders) == 2  # both orders were drawn (each with probability 1/2 per request)


# --- the circuit breaker ---------------------------------------------------------------


class Clock:
    """A clock the test moves by hand (injected into a provider's breaker)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def health(router) -> dict[str, Any]:
    response = await router.get("/health?verbose=1")
    assert response.code == 200 and response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_breaker_opens_is_skipped_and_a_probe_closes_it(start_router, fakes, tmp_path, stream):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=500, body=error_body("openai", "broken"))] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"breaker": {"failures": 3, "window_s": 60, "cooldown_s": 30}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock
    send = lambda: (post_stream if stream else _post)(router, OPENAI, request_body(OPENAI, stream=stream))  # noqa: E731

    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    failing = [(await send())[0] for _ in range(3)]
    state = (await health(router))["providers"]["primary"]["breaker"]
    assert state["state"] == "open" and state["retry_in_s"] == 30

    skipped, _ = await send()  # open: the primary is not even asked
    assert skipped.code == 200
    served_by(skipped, "backup", "model-b")
    assert len(primary.requests) == 3

    clock.now += 31  # past the cooldown: the next request is the probe, and the primary has recovered
    assert (await health(router))["providers"]["primary"]["breaker"]["retry_in_s"] == 0
    probe, _ = await send()
    assert probe.code == 200
    served_by(probe, "primary", "model-a")
    assert (await health(router))["providers"]["primary"]["breaker"] == {"state": "closed", "recent_failures": 0}

    entries = await logged_once(router, *failing, skipped, probe)
    for response in failing:
        assert attempts(entries[response.headers["x-request-id"]]) == [("primary", 500), ("backup", 200)]
    skip = entries[skipped.headers["x-request-id"]]["attempts"]
    assert [(a["provider"], a["status"]) for a in skip] == [("primary", None), ("backup", 200)]
    assert "circuit open" in skip[0]["error"]
    assert attempts(entries[probe.headers["x-request-id"]]) == [("primary", 200)]


@pytest.mark.gen_test
async def test_a_failed_probe_opens_the_circuit_again(start_router, fakes, tmp_path):
    primary = fakes()
    primary.then(*[Reply(status=502, body=error_body("openai", "broken"))] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, None, primary_options={"breaker": {"failures": 2, "window_s": 60, "cooldown_s": 5}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock

    first = [await router.post(OPENAI, request_body(OPENAI)) for _ in range(2)]
    refused = await router.post(OPENAI, request_body(OPENAI))  # open, and no fallback: 503
    clock.now += 6
    probe = await router.post(OPENAI, request_body(OPENAI))  # the probe fails: open again

    assert [r.code for r in first] == [502, 502] and probe.code == 502
    assert refused.code == 503 and refused.headers["Retry-After"]
    assert "circuit open" in native_error(OPENAI, refused)
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "open"
    assert len(primary.requests) == 3
    await logged_once(router, *first, refused, probe)


@pytest.mark.gen_test
async def test_a_probe_whose_client_leaves_does_not_wedge_the_breaker(start_router, fakes, tmp_path):
    """The half-open probe is a streamed request whose client goes away while the
    upstream is silent: the breaker must let the next request probe."""
    primary = fakes()
    gate = asyncio.Event()
    primary.then(Reply(status=500, body=error_body("openai", "broken")),
                 Reply(sse=scripted("openai"), gate=gate))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, None, primary_options={"breaker": {"failures": 1, "window_s": 60, "cooldown_s": 5}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock
    assert (await router.post(OPENAI, request_body(OPENAI))).code == 502
    clock.now += 6

    await leave_after_sending(router, OPENAI, request_body(OPENAI, stream=True), lambda: len(primary.requests) == 2)
    await poll(lambda: primary.closed)  # the router let go of the upstream

    after = await router.post(OPENAI, request_body(OPENAI))  # must be let through as the new probe
    assert after.code == 200
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    gate.set()


async def leave_after_sending(router, path: str, body: dict[str, Any], until) -> None:
    """Send a request on a raw connection, wait until ``until()``, then hang up."""
    stream = await TCPClient().connect("127.0.0.1", router.port)
    data = json.dumps(body).encode()
    await stream.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode() + data
    )
    await poll(until)
    stream.close()


async def poll(condition, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_max_concurrent_and_max_queue(start_router, fakes, tmp_path, with_fallback, stream):
    """One slot and one queue place: the first request holds the slot, the second
    waits, the third is refused (503) or goes to the fallback target."""
    primary, backup = fakes(), fakes()
    gate = asyncio.Event()
    held = scripted("openai") if stream else None
    primary.then(Reply(sse=held, gate=gate), Reply(sse=held))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url if with_fallback else None,
        primary_options={"max_concurrent": 1, "max_queue": 1},
    ))
    send = lambda: asyncio.ensure_future((post_stream if stream else _post)(router, OPENAI, request_body(OPENAI, stream=stream)))  # noqa: E731

    first = send()
    await poll(lambda: len(primary.requests) == 1)
    second = send()
    await poll(lambda: router.runtime.providers["primary"].limit.queued == 1)
    status = (await health(router))["providers"]["primary"]
    assert (status["in_flight"], status["queued"]) == (1, 1)
    third, raw = await send()
    gate.set()
    (first, _), (second, _) = await first, await second

    assert first.code == 200 and second.code == 200
    served_by(first, "primary", "model-a")
    served_by(second, "primary", "model-a")
    entries = await logged_once(router, first, second, third)
    entry = entries[third.headers["x-request-id"]]
    if with_fallback:
        assert third.code == 200
        served_by(third, "backup", "model-b")
        assert attempts(entry) == [("primary", 503), ("backup", 200)]
        assert "limit" in entry["attempts"][0]["error"]
    else:
        assert third.code == 503 and third.headers["Retry-After"] == "1"
        third._body = raw
        assert "limit of 1 concurrent requests and 1 queued" in native_error(OPENAI, third)
        assert entry["status"] == 503
    assert len(primary.requests) == 2
    await poll(lambda: router.runtime.providers["primary"].in_flight == 0)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_max_in_flight_refuses_with_503_in_the_native_shape(start_router, fakes, tmp_path, path):
    primary = fakes()
    gate = asyncio.Event()
    primary.then(Reply(gate=gate), Reply(gate=gate))
    router = start_router(primary_and_backup(tmp_path, path, primary.url, None, server={"max_in_flight": 2}))

    held = [asyncio.ensure_future(router.post(path, request_body(path))) for _ in range(2)]
    await poll(lambda: len(primary.requests) == 2)
    assert (await health(router))["in_flight"] == 2
    refused = await router.post(path, request_body(path))
    gate.set()
    held = await asyncio.gather(*held)

    assert refused.code == 503 and refused.headers["Retry-After"] == "1"
    assert "limit of 2 requests in flight" in native_error(path, refused)
    assert [r.code for r in held] == [200, 200]
    assert len(primary.requests) == 2
    entries = await logged_once(router, refused, *held)
    assert entries[refused.headers["x-request-id"]]["status"] == 503
    after = await router.post(path, request_body(path))  # the slots are back
    assert after.code == 200


# --- /health ----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_health_verbose_shows_every_provider_and_no_secret(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"breaker": {}, "max_concurrent": 4},
    ))

    plain = await router.get("/health")
    verbose = await router.get("/health?verbose=1")

    assert plain.body == b"ok"
    body = json.loads(verbose.body)
    assert body["status"] == "ok" and body["in_flight"] == 0
    assert body["providers"] == {
        "primary": {"kind": "openai", "in_flight": 0, "queued": 0, "breaker": {"state": "closed", "recent_failures": 0}},
        "backup": {"kind": "anthropic", "in_flight": 0, "queued": 0, "breaker": None},
    }
    assert b"SECRET" not in verbose.body and b"127.0.0.1" not in verbose.body


# --- nothing leaks -------------------------------------------------------------------------


def random_fault(rng: random.Random):
    """A chooser for ``FakeUpstream``: a random misbehaviour (or a good answer) per request."""

    def choose(kind: str, body: Any) -> Reply | None:
        stream = isinstance(body, dict) and body.get("stream")
        text = "one two three four five six"
        events = openai_sse(text) if kind == "openai" else anthropic_sse(text)
        cut = rng.randrange(1, len(events))
        fault = rng.choice([
            "ok", "ok", "500", "529", "429", "drop", "reset", "cut", "stall", "slow", "malformed", "html", "error_event",
            "error_then_silence",
        ])
        if fault == "ok":
            return None
        if fault in ("500", "529", "429"):
            return Reply(status=int(fault), body=error_body(kind, fault), headers={"Retry-After": "0"} if fault == "429" else {})
        if fault in ("drop", "reset"):
            return Reply(sse=events[:cut] if stream else None, drop=True, reset=fault == "reset")
        if fault == "cut":
            return Reply(sse=events[:cut]) if stream else Reply(cut_after=rng.randrange(1, 60))
        if fault == "stall":
            return Reply(sse=events, stall_after=cut) if stream else Reply(delay=60)
        if fault == "slow":
            return Reply(sse=events, stall_after=0) if stream else Reply(delay=60)
        if fault == "malformed":
            return Reply(sse=[*events[:cut], b"data: {broken\n\n"]) if stream else Reply(body=b'{"broken')
        if fault == "html":
            return Reply(status=rng.choice([200, 502]), body=HTML, headers={"Content-Type": "text/html"})
        if fault == "error_then_silence":  # the terminal error event, then the connection held open
            return Reply(sse=[*events[:cut], error_event(kind), *events[cut:]], stall_after=cut + 1) if stream else None
        return Reply(sse=[*events[:cut], error_event(kind)]) if stream else Reply(status=503, body=error_body(kind, "overloaded"))

    return choose


def socket_inodes() -> set[str]:
    """The sockets this process holds open (the router, the fake upstreams and the test client all live here)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own fd)
            continue
        if link.startswith("socket:"):
            out.add(link)
    return out


def tcp_ports() -> dict[str, tuple[int, int]]:
    """socket inode -> (local port, remote port), for this host's TCP sockets."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            ports[f"socket:[{inode}]"] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return ports


def idle_upstream_connections(upstreams: list[FakeUpstream]) -> set[str]:
    """The keep-alive connections between curl's connection cache and the fake
    upstreams (both ends live in this process): libcurl keeps a bounded number
    of them for reuse, so they are not a leak by themselves."""
    upstream_ports = {u.port for u in upstreams}
    return {inode for inode, (local, remote) in tcp_ports().items() if local in upstream_ports or remote in upstream_ports}


def live_tasks(upstreams: list[FakeUpstream]) -> set[asyncio.Task[Any]]:
    """The tasks still running, but for the fake upstreams' side of curl's idle
    keep-alive connections (Tornado runs a task per server connection)."""
    upstream_ports = {u.port for u in upstreams}

    def upstream_side(task: asyncio.Task[Any]) -> bool:
        frame = getattr(task.get_coro(), "cr_frame", None)
        connection = frame.f_locals.get("self") if frame is not None else None
        sock = getattr(getattr(connection, "stream", None), "socket", None)
        return sock is not None and sock.getsockname()[1] in upstream_ports

    return {t for t in asyncio.all_tasks() if not t.done() and not upstream_side(t)}


@pytest.mark.gen_test(timeout=120)
async def test_no_sockets_curl_handles_or_tasks_leak_under_faults(start_router, fakes, tmp_path):
    faulty, backup = fakes(), fakes()
    faulty.chooser = random_fault(random.Random(7))
    flaky = {"retries": 1, **FAST_RETRIES, "timeout_s": 1.0, "first_byte_timeout_s": SHORT, "idle_timeout_s": SHORT,
             "breaker": {"failures": 8, "window_s": 1, "cooldown_s": 0.1}, "max_concurrent": 8, "max_queue": 4}
    router = start_router({
        "server": {"dashboard": False, "max_clients": 20},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {
            "flaky_oai": provider("openai", faulty.url, **flaky),
            "flaky_ant": provider("anthropic", faulty.url, **flaky),
            "good": provider("openai", backup.url),
            "good_ant": provider("anthropic", backup.url),
        },
        "router": {"routes": [
            {"model": "solo-oai", "to": "flaky_oai"},
            {"model": "solo-ant", "to": "flaky_ant"},
            {"model": "fb-oai", "to": ["flaky_oai", "good"]},
            {"model": "fb-ant", "to": ["flaky_ant", "good"], "continue_on_failure": True},
            {"model": "cont", "to": ["flaky_oai", "good_ant"], "continue_on_failure": True},
        ]},
    })
    http = router.runtime.http
    rng = random.Random(11)

    async def one() -> int | None:
        path = rng.choice([OPENAI, ANTHROPIC])
        body = request_body(path, stream=rng.random() < 0.5)
        body["model"] = rng.choice(["solo-oai", "solo-ant", "fb-oai", "fb-ant", "cont"])
        if body.get("stream") and rng.random() < 0.1:  # a client that hangs up mid-way
            await leave_after_sending(router, path, body, lambda: True)
            return None
        response, _ = await (post_stream if body.get("stream") else _post)(router, path, body)
        return response.code

    async def run(count: int, concurrency: int = 20) -> list[int | None]:
        codes: list[int | None] = []
        for start in range(0, count, concurrency):
            codes += await asyncio.gather(*(one() for _ in range(min(concurrency, count - start))))
        return codes

    await run(40)  # warm up: the fixtures' lazily made objects and curl's connection cache exist from here on
    await poll(lambda: len(router.runtime.in_flight) == 0 and len(http._free_list) == len(http._curls))
    upstreams = [faulty, backup]
    sockets = socket_inodes() - idle_upstream_connections(upstreams)
    tasks = live_tasks(upstreams)

    codes = await run(200)

    assert set(codes) <= {None, 200, 429, 502, 503, 504}, Counter(codes)
    assert Counter(codes)[200] > 0 and len(set(codes)) > 2
    # Everything winds down: requests, upstream transfers (curl handles back in the pool), tasks, sockets.
    await poll(lambda: len(router.runtime.in_flight) == 0)
    await poll(lambda: len(http._free_list) == len(http._curls))
    await poll(lambda: live_tasks(upstreams) <= tasks)
    await poll(lambda: socket_inodes() - idle_upstream_connections(upstreams) <= sockets)
    assert len(idle_upstream_connections(upstreams)) <= 2 * 4 * len(http._curls)  # both ends of curl's bounded cache
    for provider_ in router.runtime.providers.values():
        assert (provider_.limit.in_flight, provider_.limit.queued) == (0, 0)
    # Every request is in the log exactly once, the ones whose client hung up included.
    await poll(lambda: len(router.log_entries()) == 240)
    entries = router.log_entries()
    assert len({e["id"] for e in entries}) == 240


# --- continue_on_failure ----------------------------------------------------------------------


def continuing(tmp_path, path: str, primary: FakeUpstream, backup: FakeUpstream, backup_kind: str = "anthropic",
               primary_options: dict[str, Any] | None = None) -> dict[str, Any]:
    return config(
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

    response, raw = await post_stream(router, path, request_body(path, stream=True, text="count"))

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
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
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

    response, raw = await post_stream(router, ANTHROPIC, body)

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

    response, raw = await post_stream(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert backup.requests == []
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert entry["continued"]["to"] is None
    assert "no later target takes a prefill: 'backup' (openai)" == entry["continued"]["reason"]
    assert entry["provider"] == "primary" and entry["status"] == 502


@pytest.mark.gen_test
async def test_a_continuation_that_fails_ends_the_stream_with_the_error(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(sse=[*with_content("anthropic"), error_event("anthropic")]))
    backup.then(Reply(status=529, body=error_body("anthropic", "Overloaded", "overloaded_error")))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await post_stream(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert streamed_text(ANTHROPIC, raw) == "one two three "
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert entry["continued"]["to"] is None and entry["continued"]["reason"].startswith("continuation failed")
    assert attempts(entry) == [("primary", 200), ("backup", 529)]
    assert entry["provider"] == "primary" and entry["error"]


@pytest.mark.gen_test
async def test_only_text_is_continued(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    calls = anthropic_sse("Let me look.", [("toolu_1", "lookup", '{"q": "x"}')])
    primary.then(Reply(sse=calls[:-3], drop=True))  # cut inside the tool call
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await post_stream(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert is_error_event(ANTHROPIC, last_event(raw))
    assert backup.requests == []
    entry = (await logged_once(router, response))[response.headers["x-request-id"]]
    assert entry["continued"]["reason"] == "only a text answer can be continued"


@pytest.mark.gen_test
async def test_continuation_after_a_closed_text_block_starts_a_new_block(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    events = anthropic_sse("one two three")
    primary.then(Reply(sse=events[:-2], drop=True))  # after content_block_stop, before message_delta
    backup.then(Reply(sse=anthropic_sse(" four", model="model-b")))
    router = start_router(continuing(tmp_path, ANTHROPIC, primary, backup))

    response, raw = await post_stream(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

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

    response, raw = await post_stream(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200 and validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw) == "one two three "
    assert last_event(raw)["type"] == "message_stop"


# --- the dashboard shows the breakers -------------------------------------------------------


@pytest.fixture
def browser(io_loop):
    from tests.browser import Browser, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    browser = io_loop.run_sync(Browser.launch, timeout=30)
    yield browser
    io_loop.run_sync(browser.close, timeout=30)


@pytest.mark.gen_test(timeout=90)
async def test_dashboard_shows_provider_breakers_and_attempts(start_router, fakes, tmp_path, browser):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=500, body=error_body("openai", "broken"))] * 2)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, server={"dashboard": True},
        primary_options={"breaker": {"failures": 2, "window_s": 60, "cooldown_s": 600}},
    ))
    strip = "document.querySelector('#providers .prov[data-name=\"primary\"]')"

    await browser.goto(router.url + "/dashboard")
    await browser.wait_for(f"{strip} !== null && {strip}.dataset.breaker === 'closed'")
    assert await browser.evaluate("document.querySelector('#providers .prov[data-name=\"backup\"]').dataset.breaker") == "none"

    failed = [await router.post(OPENAI, request_body(OPENAI)) for _ in range(2)]
    assert [r.code for r in failed] == [200, 200]
    await browser.wait_for(f"{strip}.dataset.breaker === 'open'", timeout=20)  # the next poll (every 5 s)
    assert "circuit open" in await browser.evaluate(f"{strip}.title")

    request_id = failed[0].headers["x-request-id"]
    await browser.click(f'#rows tr[data-id="{request_id}"]')
    await browser.wait_for("document.querySelectorAll('#detail .attempt').length === 2")
    lines = await browser.evaluate("Array.from(document.querySelectorAll('#detail .attempt'), n => n.textContent)")
    assert lines[0].startswith("primary/model-a  500") and "broken" in lines[0]
    assert lines[1].startswith("backup/model-b  200")


@pytest.mark.gen_test
async def test_breaker_counts_failures_within_the_window_not_in_a_row(start_router, fakes, tmp_path):
    """Failing every other request is failing: the successes between the failures
    do not reset the count; failures older than window_s do not count."""
    primary, backup = fakes(), fakes()
    fail = Reply(status=500, body=error_body("openai", "broken"))
    primary.then(fail, Reply(), fail, Reply(), fail, Reply())
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"breaker": {"failures": 3, "window_s": 60, "cooldown_s": 30}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock

    await router.post(OPENAI, request_body(OPENAI))  # fails (the backup answers)
    clock.now += 61  # that failure ages out of the window
    for _ in range(4):  # ok, fail, ok, fail: two failures within the window
        await router.post(OPENAI, request_body(OPENAI))
    assert (await health(router))["providers"]["primary"]["breaker"] == {"state": "closed", "recent_failures": 2}
    await router.post(OPENAI, request_body(OPENAI))  # ok
    await router.post(OPENAI, request_body(OPENAI))  # the default answer: ok
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    primary.then(fail)
    await router.post(OPENAI, request_body(OPENAI))  # the third failure within the window
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "open"
