"""The live dashboard: the page, its EventSource feed, and the page running in a
real (headless) chromium against a real router."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pycurl
import pytest
import tornado.web
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.testing import bind_unused_port

from tests.browser import Browser
from tests.configs import base_config
from tests.waiting import poll
from tests.wire import ANTHROPIC, OPENAI, chat, message
from tornrouter.runtime import make_app
from tornrouter.events import EventBus
from tornrouter.handlers import routes
from tornrouter.handlers.dashboard import DashboardEventsHandler

# What every log entry carries: the seed's fields, then the operator's.
ENTRY_FIELDS = {
    "ts_ms", "provider", "requested_model", "sent_model", "duration_ms", "tags", "plugins", "system",
    "messages", "response", "error", "id", "endpoint", "status", "stream", "usage", "ttft_ms", "routing",
    "lossy", "cancelled", "instance", "worker",
}


class Feed:
    """A ``/dashboard/events`` subscription read by an ``AsyncHTTPClient`` with a
    ``streaming_callback``.  ``events`` collects ``("data", entry)`` and
    ``("comment", text)`` in arrival order; each SSE event is checked to be a
    single line, as the feed promises.

    Tornado cannot cancel a fetch in flight, so ``close`` hangs up the way the
    router stops an upstream transfer: libcurl's progress callback returns
    non-zero and curl aborts the transfer and closes the connection."""

    def __init__(self, url: str) -> None:
        self.client = CurlAsyncHTTPClient(force_instance=True)
        self.events: list[tuple[str, Any]] = []
        self._buffer = b""
        self._hang_up = False
        self._failure: AssertionError | None = None
        self.done = self.client.fetch(
            url, streaming_callback=self._on_chunk, prepare_curl_callback=self._prepare_curl, request_timeout=120,
        )

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, lambda *_: 1 if self._hang_up else 0)

    def _on_chunk(self, chunk: bytes) -> None:
        try:
            self._parse(chunk)
        except AssertionError as exc:  # raised here it would only be logged: keep it for the test
            self._failure = exc

    def _parse(self, chunk: bytes) -> None:
        self._buffer += chunk
        *blocks, self._buffer = self._buffer.split(b"\n\n")
        for block in blocks:
            lines = block.decode("utf-8").split("\n")
            if lines[0].startswith("event: "):  # a named event (stats, health): its name, then one data line
                assert len(lines) == 2 and lines[1].startswith("data: "), f"a named event, got {lines!r}"
                self.events.append(("event", (lines[0][len("event: "):], json.loads(lines[1][len("data: "):]))))
                continue
            assert len(lines) == 1, f"one line per event, got {lines!r}"
            line = lines[0]
            if line.startswith("data: "):
                self.events.append(("data", json.loads(line[len("data: "):])))
            elif line.startswith(":"):
                self.events.append(("comment", line[1:].strip()))
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")

    def entries(self) -> list[dict[str, Any]]:
        if self._failure is not None:
            raise self._failure
        return [value for kind, value in self.events if kind == "data"]

    def named(self, name: str) -> list[dict[str, Any]]:
        """The data of each ``event: name`` so far."""
        if self._failure is not None:
            raise self._failure
        return [data for kind, (event, data) in ((k, v) for k, v in self.events if k == "event") if event == name]

    def comments(self) -> list[str]:
        if self._failure is not None:
            raise self._failure
        return [value for kind, value in self.events if kind == "comment"]

    async def close(self) -> None:
        self._hang_up = True
        with pytest.raises(CurlError) as aborted:
            await self.done
        assert aborted.value.errno == pycurl.E_ABORTED_BY_CALLBACK
        self.client.close()


@pytest.fixture
def feed_url(router, io_loop):
    """The router's own app (same runtime, same event bus) on a second port,
    with the feed's keep-alive shortened from 15 s to 0.1 s."""
    table = [
        (path, handler, {**kwargs, "keepalive_s": 0.1} if handler is DashboardEventsHandler else kwargs)
        for path, handler, kwargs in routes(router.runtime)
    ]
    sock, port = bind_unused_port()
    server = HTTPServer(tornado.web.Application(table))
    server.add_socket(sock)
    yield f"http://127.0.0.1:{port}/dashboard/events"
    server.stop()
    io_loop.run_sync(server.close_all_connections)


# --- the page -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_page_is_served_self_contained(router):
    response = await router.get("/dashboard")
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.body.decode("utf-8")
    assert "new EventSource(" in page
    # Nothing from outside (the page must work offline), and data never as HTML.
    for forbidden in ("http://", "https://", "//cdn", "@import", "@font-face", ".innerHTML", ".outerHTML",
                      "insertAdjacentHTML(", "document.write("):
        assert forbidden not in page, forbidden


@pytest.mark.gen_test
async def test_dashboard_disabled_is_not_served(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), server={"dashboard": False}))
    assert (await router.get("/dashboard")).code == 404
    assert (await router.get("/dashboard/events")).code == 404


# --- the feed -------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_feed_sends_one_data_line_per_request_and_keepalives(router, feed_url):
    feed = Feed(feed_url)
    await poll(lambda: feed.comments(), "the ': connected' comment")
    assert feed.comments()[0] == "connected"
    assert router.runtime.events.subscriber_count == 1

    sent = [
        await router.post(OPENAI, chat("local", "first", stream=False)),
        await router.post(ANTHROPIC, {"model": "local", "max_tokens": 50, "system": "be brief",
                                      "messages": [{"role": "user", "content": "second"}]}),
        await router.post(OPENAI, chat("nope,any")),  # an unknown forced provider: a 400, still logged
    ]
    assert [r.code for r in sent] == [200, 200, 400]
    await poll(lambda: len(feed.entries()) >= 3, "three data events")
    entries = feed.entries()
    assert len(entries) == 3
    assert [e["id"] for e in entries] == [r.headers["x-request-id"] for r in sent]
    for entry in entries:
        assert ENTRY_FIELDS <= set(entry)
    first, second, failed = entries
    assert (first["endpoint"], first["provider"], first["status"]) == (OPENAI, "echo", 200)
    assert first["response"]["content"] == [{"type": "text", "text": "echo: first"}]
    assert first["messages"] == [{"role": "user", "content": [{"type": "text", "text": "first"}]}]
    assert (second["endpoint"], second["system"]) == (ANTHROPIC, "be brief")
    assert second["routing"]["matched"] == "default"
    assert failed["status"] == 400 and "no provider configured" in failed["error"]
    # The feed carries what the request log records.
    assert [e["id"] for e in router.log_entries()] == [e["id"] for e in entries]

    seen = len(feed.events)
    await poll(lambda: "keep-alive" in feed.comments()[1:], "a keep-alive comment")
    assert all(kind == "comment" for kind, _ in feed.events[seen:])

    await feed.close()
    await poll(lambda: router.runtime.events.subscriber_count == 0, "the subscriber to be removed")


@pytest.mark.gen_test(timeout=30)
async def test_a_new_feed_replays_recent_entries_first(router, feed_url):
    ids = [(await router.post(OPENAI, chat("local", f"m{i}"))).headers["x-request-id"] for i in range(3)]
    feed = Feed(feed_url)
    await poll(lambda: len(feed.entries()) == 3, "the replayed entries")
    assert feed.comments()[0] == "connected" and feed.events[0] == ("comment", "connected")
    assert [e["id"] for e in feed.entries()] == ids
    late = (await router.post(OPENAI, chat("local", "late"))).headers["x-request-id"]
    await poll(lambda: len(feed.entries()) == 4, "the live entry after the replay")
    assert feed.entries()[-1]["id"] == late
    await feed.close()
    await poll(lambda: router.runtime.events.subscriber_count == 0, "the subscriber to be removed")


@pytest.mark.gen_test(timeout=60)
async def test_a_subscriber_that_never_reads_does_not_slow_requests(router):
    limit = 5
    router.runtime.events = events = EventBus(per_subscriber=limit)

    # A feed client that sends its request and then never reads: a tiny receive
    # window, so the server's socket and then its writer stall almost at once.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(stuck, ("127.0.0.1", router.port))
        stuck.send(b"GET /dashboard/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await poll(lambda: events.subscriber_count == 1, "the stuck subscriber")
        (subscriber,) = events._subscribers

        # ~40 x 2 x 200 KB of log entries: far more than loopback socket buffers
        # (4 MB at most here) can absorb, so the feed's writer is blocked in flush().
        big = "x" * 200_000
        responses = await asyncio.gather(*(router.post(OPENAI, chat("local", f"{i} {big}")) for i in range(40)))
        assert [r.code for r in responses] == [200] * 40
        # Publishing never waited; the stuck subscriber kept only its newest `limit`.
        assert len(subscriber.pending) == limit
        last_ids = {r.headers["x-request-id"] for r in responses}
        assert {json.loads(line)["id"] for line in subscriber.pending} <= last_ids
        assert events.subscriber_count == 1
    finally:
        stuck.close()
    await poll(lambda: events.subscriber_count == 0, "the stuck subscriber to be removed on hang-up")


# --- the page in a real browser -------------------------------------------------


ROWS = "document.querySelectorAll('#rows tr[data-id]')"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def row(request_id: str) -> str:
    return f'#rows tr[data-id="{request_id}"]'


async def text_of(browser: Browser, selector: str) -> str:
    return await browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


@pytest.mark.gen_test(timeout=90)
async def test_browser_shows_live_rows_and_request_detail(router, browser, tmp_path):
    await browser.goto(router.url + "/dashboard")
    await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'")
    # A fresh router has no history: whatever rows appear next came over the live feed.
    assert await browser.evaluate(f"{ROWS}.length") == 0

    hello = await router.post(OPENAI, {
        "model": "local",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": XSS}],
    })
    tool = await router.post(ANTHROPIC, {
        "model": "local", "max_tokens": 100, "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": '/tool get_weather {"city": "Paris"}'}],
    })
    failed = await router.post(OPENAI, chat("nope,gpt-x"))
    assert [r.code for r in (hello, tool, failed)] == [200, 200, 400]
    ids = [r.headers["x-request-id"] for r in (hello, tool, failed)]

    await browser.wait_for(f"{ROWS}.length === 3")
    # Newest first.
    assert await browser.evaluate(f"Array.from({ROWS}, tr => tr.dataset.id)") == ids[::-1]
    assert await text_of(browser, row(ids[0]) + " td.model") == "local"
    assert await text_of(browser, row(ids[0]) + " td.provider") == "echo"
    assert await text_of(browser, row(ids[0]) + " td.endpoint") == OPENAI
    assert await text_of(browser, row(ids[1]) + " td.endpoint") == ANTHROPIC
    assert await browser.evaluate(f"document.querySelector('{row(ids[2])} .status').className") == "status s4xx"
    assert await text_of(browser, row(ids[2]) + " .status") == "400"
    assert await text_of(browser, "#stat-requests") == "3"
    assert await text_of(browser, "#stat-errors") == "1"

    # A click opens the detail view of that request.
    await browser.click(row(ids[0]))
    await browser.wait_for("!document.getElementById('detail').hidden")
    assert await browser.evaluate(f"document.querySelector('{row(ids[0])}').getAttribute('aria-selected')") == "true"
    assert await text_of(browser, "#detail .system-text") == "You are terse."
    assert await browser.evaluate(
        "Array.from(document.querySelectorAll('#detail .messages .block-text'), n => n.textContent)"
    ) == [XSS]
    assert await text_of(browser, "#detail .response .block-text") == "echo: " + XSS
    assert "default provider" in await text_of(browser, "#detail .routing")
    raw = json.loads(await text_of(browser, "#detail .raw-json"))
    assert raw["id"] == ids[0] and raw["system"] == "You are terse."
    # The prompt was shown as text, never run as markup.
    assert await browser.evaluate("window.__xss === undefined && document.querySelectorAll('#detail img, #detail script').length === 0")

    await browser.screenshot(str(tmp_path / "dashboard.png"))

    # Tool calls are rendered with their JSON input.
    await browser.click(row(ids[1]) + " td.time")  # the story covers the right of the table
    await browser.wait_for(f"document.querySelector('#detail .raw-json').textContent.includes('{ids[1]}')")
    assert "get_weather" in await text_of(browser, "#detail .response .tool-call .block-label")
    assert json.loads(await text_of(browser, "#detail .response .tool-input")) == {"city": "Paris"}

    # A failed request shows its error.
    await browser.click(row(ids[2]) + " td.time")
    await browser.wait_for("document.querySelector('#detail .error-box') !== null")
    assert "no provider configured" in await text_of(browser, "#detail .error-box")

    # The filter hides what does not match; Escape closes the detail.
    await browser.evaluate("document.getElementById('filter').focus()")
    await browser.type_text("nope 400")
    await browser.wait_for(f"Array.from({ROWS}).filter(tr => !tr.hidden).length === 1")
    assert await browser.evaluate(f"Array.from({ROWS}).filter(tr => !tr.hidden)[0].dataset.id") == ids[2]
    await browser.evaluate("document.getElementById('filter').blur()")
    await browser.press_key("Escape")
    await browser.wait_for("document.getElementById('detail').hidden")

    assert browser.errors == []


@pytest.mark.gen_test(timeout=90)
async def test_browser_reconnects_and_does_not_duplicate_replayed_rows(router, browser, io_loop):
    await browser.goto(router.url + "/dashboard")
    await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'")
    before = (await router.post(OPENAI, chat("local", "before"))).headers["x-request-id"]
    await browser.wait_for(f"{ROWS}.length === 1")

    # The router goes away: the page says so.
    router.server.stop()
    await router.server.close_all_connections()
    await browser.wait_for("document.getElementById('conn').dataset.state === 'reconnecting'")

    # It comes back on the same port; the page reconnects by itself, and the
    # replayed history does not add the row it already has.
    server = HTTPServer(make_app(router.runtime))
    server.add_sockets(bind_sockets(router.port, "127.0.0.1"))
    try:
        await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'", timeout=30)
        after = (await router.post(OPENAI, chat("local", "after"))).headers["x-request-id"]
        await browser.wait_for(f"{ROWS}.length === 2")
        assert await browser.evaluate(f"Array.from({ROWS}, tr => tr.dataset.id)") == [after, before]
        assert await text_of(browser, "#stat-requests") == "2"
    finally:
        server.stop()
        await server.close_all_connections()
    assert browser.errors == []


@pytest.mark.gen_test(timeout=90)
async def test_browser_keeps_only_the_newest_500_rows(router, browser):
    await browser.goto(router.url + "/dashboard")
    await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'")
    # Entries published straight onto the bus, as the router does after each request.
    for i in range(520):
        router.runtime.events.publish(json.dumps({"id": f"synthetic-{i}", "ts_ms": 1_700_000_000_000 + i,
                                                  "endpoint": OPENAI, "requested_model": f"m{i}", "status": 200}))
    await browser.wait_for("document.getElementById('stat-requests').textContent === '520'")
    assert await browser.evaluate(f"{ROWS}.length") == 500
    assert await browser.evaluate(f"{ROWS}[0].dataset.id") == "synthetic-519"
    assert await browser.evaluate(f"{ROWS}[499].dataset.id") == "synthetic-20"
    assert browser.errors == []


@pytest.mark.gen_test(timeout=90)
async def test_browser_shows_sessions_and_filters_by_one(router, browser, tmp_path):
    await browser.goto(router.url + "/dashboard")
    await browser.wait_for("document.getElementById('conn').dataset.state === 'connected'")
    session = "8c1f0e2a-5b7d-4c3e-9f10-2d4b6a8c0e1f"
    sent = [
        await router.post(ANTHROPIC, message("local", "one"), headers={"X-Claude-Code-Session-Id": session}),
        await router.post(ANTHROPIC, message("local", "two"), headers={"X-Claude-Code-Session-Id": "other-session"}),
        await router.post(OPENAI, chat("local", "none")),
        await router.post("/v1/messages/count_tokens", {"model": "local", "messages": [{"role": "user", "content": "x" * 40}]},
                          headers={"X-Claude-Code-Session-Id": session}),
    ]
    assert [r.code for r in sent] == [200] * 4
    ids = [r.headers["x-request-id"] for r in sent]
    await browser.wait_for(f"{ROWS}.length === 4")
    assert await text_of(browser, row(ids[0]) + " td.session") == "8c1f0e2a-5b7…"
    assert await text_of(browser, row(ids[2]) + " td.session") == "–"
    assert await text_of(browser, row(ids[3]) + " td.tokens") == "10 est."
    await browser.screenshot(str(tmp_path / "sessions.png"))

    await browser.click(row(ids[0]) + " .session-link")  # only that session's requests
    await browser.wait_for(f"Array.from({ROWS}).filter(tr => !tr.hidden).length === 2")
    shown = await browser.evaluate(f"Array.from({ROWS}).filter(tr => !tr.hidden).map(tr => tr.dataset.id)")
    assert shown == [ids[3], ids[0]]
    assert await browser.evaluate("document.getElementById('f-session').value") == session
    assert await browser.evaluate("document.getElementById('detail').hidden")  # the link filters; it opens nothing

    await browser.click(row(ids[0]))
    await browser.wait_for("!document.getElementById('detail').hidden")
    assert session in await text_of(browser, "#detail .overview")
    assert browser.errors == []
