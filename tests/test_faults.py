"""Fault injection: upstreams that misbehave on cue, and what the client gets.

Every misbehaviour an upstream can show (refused, reset, cut short, an error
status with or without ``Retry-After``, silence before the first byte or in
mid-stream, a body that is not JSON, an HTML error page, an answer far too
large, a stream without its end) is played by a real loopback server
(``tests/fake_upstream.py``) against a real router, with and without a fallback
target.  For each the client gets the fallback's answer or a native error with
the right status, the ``x-tornrouter-*`` headers name the target that served
(or was tried last), and the request is in the log exactly once with its
``attempts``.  A stream fails over only before its first content (the commit
point); after it, the stream ends with the API's error event.  Last, a leak
check over a few hundred faulty requests.

The safety nets have their own files: ``test_retries.py``,
``test_load_balancing.py``, ``test_breaker.py``, ``test_concurrency.py`` and
``test_continuation.py``.  Timeouts are configured short where a test is about
a timeout; nothing asserts how long anything took, and whatever happens after
the client has its answer is polled for against a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from typing import Any

import pytest

from tests.answers import answer_text, is_error_event, last_event, native_error, served_by, streamed_text
from tests.configs import dead_url, primary_and_backup, provider
from tests.fake_upstream import FakeUpstream, Reply, nginx_error_page, scripted_sse
from tests.upstream_faults import (
    FAST_RETRIES, SHORT, TEXT, attempts, error_body, error_event, head, leave_after_sending, logged_entry,
    request_body, scripted, send, stream_fault_after,
)
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI
from tornrouter.validate_stream import validate


# --- non-streamed: every misbehaviour, with and without a fallback -----------------

HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
HUGE_LIMIT = 1024 * 1024  # server.max_response_bytes in the tests that use it


def start_over_fault(start_router, fakes, tmp_path, path: str, reply: Reply | None, options: dict[str, Any],
                     with_fallback: bool):
    """A router whose primary plays ``reply`` (None: nothing listens), with
    ``options``, and, ``with_fallback``, a backup that answers well.
    -> (the router, the primary's fake upstream)"""
    primary, backup = fakes(), fakes()
    if reply is not None:
        primary.then(reply)
    router = start_router(primary_and_backup(
        tmp_path, path, primary.url if reply else dead_url(), backup.url if with_fallback else None,
        primary_options=options, server={"max_response_bytes": HUGE_LIMIT},
    ))
    return router, primary


def nonstream_fault(name: str, kind: str, *, relayed: bool = True) -> tuple[Reply | None, int, dict[str, Any]]:
    """(what the primary does, the status the client gets without a fallback,
    options for the primary).  None: nothing listens (connection refused).
    The primary speaks the client's API: its own errors reach the client as
    they came, status included; unless not ``relayed`` (a cloud that wraps the
    API, as Azure does), and then they are a 502, a 429 kept."""
    error = lambda status: Reply(status=status, body=error_body(kind, f"upstream says {status}"))  # noqa: E731
    faults: dict[str, tuple[Reply | None, int, dict[str, Any]]] = {
        "refused": (None, 502, {}),
        "reset_before_answer": (Reply(drop=True, reset=True), 502, {}),
        "closed_before_answer": (Reply(drop=True), 502, {}),
        "reset_mid_body": (Reply(cut_after=40, reset=True), 502, {}),
        "cut_mid_body": (Reply(cut_after=40), 502, {}),
        "500": (error(500), 500, {}),
        "502": (error(502), 502, {}),
        "503": (error(503), 503, {}),
        "529": (error(529), 529, {}),
        "503_retry_after": (Reply(status=503, body=error_body(kind, "busy"), headers={"Retry-After": "7"}), 503, {}),
        "429": (Reply(status=429, body=error_body(kind, "slow down", "rate_limit_error")), 429, {}),
        "429_retry_after": (Reply(status=429, body=error_body(kind, "slow down", "rate_limit_error"), headers={"Retry-After": "7"}), 429, {}),
        "slow_first_byte": (Reply(delay=60), 504, {"timeout_s": SHORT}),
        "malformed_json": (Reply(body=b'{"id": "chatcmpl-1", "choices": [{"message": {"rol'), 502, {}),
        "html_error_page": (Reply(status=502, body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
        "html_instead_of_json": (Reply(body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
        "far_too_large": (Reply(body=b'{"pad": "' + b"x" * (2 * HUGE_LIMIT) + b'"}'), 502, {}),
    }
    return unrelayed(name, faults[name]) if not relayed else faults[name]


API_ERRORS = frozenset({"500", "502", "503", "529", "503_retry_after", "error_event_first"})  # the API's own, not a 429


def unrelayed(name: str, fault: tuple[Reply | None, int, dict[str, Any]]) -> tuple[Reply | None, int, dict[str, Any]]:
    """``fault`` as a client meets it when the upstream's own errors are not
    relayed: an error of the API is a 502 (a 429 stays a 429, with its Retry-After)."""
    reply, status, options = fault
    return reply, 502 if name in API_ERRORS else status, options


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
    router, primary = start_over_fault(start_router, fakes, tmp_path, path, reply, options, with_fallback)

    response = await router.post(path, request_body(path))

    entry = await logged_entry(router, response)
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
        if isinstance(reply.body if reply else None, dict):  # the API's own error: relayed unmodified
            assert json.loads(response.body) == reply.body
        else:
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


# --- streamed: the commit point ------------------------------------------------------------


def stream_fault_before(name: str, kind: str, *, relayed: bool = True) -> tuple[Reply | None, int, dict[str, Any]]:
    """Failures before the first content: (what the primary does, the status of the
    HTTP error the client gets without a fallback, options for the primary).
    The primary speaks the client's API: its own error, a status or an error
    event, reaches the client as it came (unless not ``relayed``: ``unrelayed``)."""
    faults: dict[str, tuple[Reply | None, int, dict[str, Any]]] = {
        "refused": (None, 502, {}),
        "error_event_first": (Reply(sse=[*head(kind), error_event(kind)]), 529 if kind == "anthropic" else 500, {}),
        "529": (Reply(status=529, body=error_body(kind, "Overloaded", "overloaded_error")), 529, {}),
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
    return unrelayed(name, faults[name]) if not relayed else faults[name]


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
    router, primary = start_over_fault(start_router, fakes, tmp_path, path, reply, options, with_fallback)

    response, raw = await router.post_stream(path, request_body(path, stream=True))

    entry = await logged_entry(router, response)
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
        message = native_error(path, response)
        if fault in ("529", "429_retry_after"):  # the API's own error: relayed unmodified
            assert json.loads(raw) == reply.body
        elif fault == "error_event_first":
            assert raw == error_event(kind).split(b"data: ", 1)[1].strip()
        else:
            assert "primary" in message
        served_by(response, "primary", "model-a")
        assert entry["status"] == status and entry["error"]
        if fault.endswith("retry_after"):
            assert response.headers["Retry-After"] == "7"
    if reply is not None:
        assert len(primary.requests) == 1


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

    response, raw = await router.post_stream(path, request_body(path, stream=True))

    assert response.code == 200
    assert validate(raw, KIND[path]) == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    served_by(response, "primary", "model-a")
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", 200)]
    assert entry["status"] == status and entry["error"]
    assert backup.requests == []


# --- what the client hears of an upstream's error body -------------------------------------


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

    response, raw = await send(router, path, request_body(path, stream=stream))

    assert response.code == 502 and response.headers["Content-Type"] == "application/json"
    response._body = raw
    summary = "provider 'primary': upstream returned 502 with a text/html page: \"502 Bad Gateway\""
    assert native_error(path, response) == summary
    assert json.loads(raw)["error"]["type"] == ("server_error" if path == OPENAI else "api_error")
    entry = await logged_entry(router, response)
    (attempt,) = entry["attempts"]
    assert attempt["status"] == 502 and attempt["error"] == entry["error"] == summary
    assert attempt["upstream_body"] == page.replace(key.encode(), b"***")[:4096].decode() + "…"
    assert "SECRET" not in raw.decode() and "SECRET" not in json.dumps(entry)


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_an_apis_own_error_reaches_its_client_unmodified(start_router, fakes, tmp_path, path, stream):
    body = error_body(KIND[path], "prompt is too long", "invalid_request_error")
    primary = fakes()
    primary.then(Reply(status=400, body=body))
    router = start_router(primary_and_backup(tmp_path, path, primary.url, None))

    response, raw = await send(router, path, request_body(path, stream=stream))

    assert response.code == 400
    assert json.loads(raw) == body  # unmodified: an agent's recovery matches its wording
    served_by(response, "primary", "model-a")
    entry = await logged_entry(router, response)
    assert entry["error"] == "provider 'primary': upstream returned 400: prompt is too long"
    assert entry["attempts"][0]["upstream_body"] == json.dumps(body)


# --- nothing leaks -------------------------------------------------------------------------


def random_fault(rng: random.Random):
    """A chooser for ``FakeUpstream``: a random misbehaviour (or a good answer) per request."""

    def choose(kind: str, body: Any) -> Reply | None:
        stream = isinstance(body, dict) and body.get("stream")
        text = "one two three four five six"
        events = scripted_sse(kind, text)
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
        response, _ = await send(router, path, body)
        return response.code

    async def run(count: int, concurrency: int = 20) -> list[int | None]:
        codes: list[int | None] = []
        for start in range(0, count, concurrency):
            codes += await asyncio.gather(*(one() for _ in range(min(concurrency, count - start))))
        return codes

    await run(40)  # warm up: the fixtures' lazily made objects and curl's connection cache exist from here on
    await poll(lambda: len(router.runtime.in_flight) == 0 and len(http._free_list) == len(http._curls), "the warm-up to end")
    upstreams = [faulty, backup]
    sockets = socket_inodes() - idle_upstream_connections(upstreams)
    tasks = live_tasks(upstreams)

    codes = await run(200)

    assert set(codes) <= {None, 200, 429, 500, 502, 503, 504, 529}, Counter(codes)  # 500, 529: an upstream's own, relayed
    assert Counter(codes)[200] > 0 and len(set(codes)) > 2
    # Everything winds down: requests, upstream transfers (curl handles back in the pool), tasks, sockets.
    await poll(lambda: len(router.runtime.in_flight) == 0, "every request to end")
    await poll(lambda: len(http._free_list) == len(http._curls), "every curl handle back in the pool")
    await poll(lambda: live_tasks(upstreams) <= tasks, "no more tasks than before")
    await poll(lambda: socket_inodes() - idle_upstream_connections(upstreams) <= sockets, "no more sockets than before")
    assert len(idle_upstream_connections(upstreams)) <= 2 * 4 * len(http._curls)  # both ends of curl's bounded cache
    for provider_ in router.runtime.providers.values():
        assert (provider_.limit.in_flight, provider_.limit.queued) == (0, 0)
    # Every request is in the log exactly once, the ones whose client hung up included.
    await poll(lambda: len(router.log_entries()) == 240, "every request logged")
    entries = router.log_entries()
    assert len({e["id"] for e in entries}) == 240