"""The dashboard page in a real headless chromium against a real router and
real fake upstreams: the charts and the health strip, filters and search,
pause and resume, the request story of a failed-over request and its
copy-as-curl (run for real), of a request a plugin changed that waited for
its provider's slot, entries without bodies, dry runs and mirror
records, text that must stay text, ten thousand rows streamed in, and the
fleet (``--processes 2``, two instances on Redis) on one page.

Entries that no request of these tests makes (a dry run, ``log.bodies: hash``,
mirror records, payloads in every field) are published on the dashboard's bus,
as the router publishes each request's entry, in the shape the log writes.

With ``TORNROUTER_SCREENSHOTS=<dir>`` the tests keep their screenshots of the
main views there (the README's come from ``docs/``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.access_support import ADMIN_KEY, TEAM_A, TEAM_B, bearer
from tests.browser import Browser
from tests.configs import provider
from tests.fake_upstream import Reply
from tests.processes import DEADLINE_S
from tests.redis_support import needs_redis
from tests.test_fleet import fleet_config, redis_instance, send
from tests.upstream_faults import error_body
from tests.waiting import poll
from tests.wire import ANTHROPIC, OPENAI, RESPONSES, chat, message

ROWS = "document.querySelectorAll('#rows tr[data-id]')"
VISIBLE = f"Array.from({ROWS}).filter(tr => !tr.hidden).map(tr => tr.dataset.id)"
CONNECTED = "document.getElementById('conn').dataset.state === 'connected'"


def rich_config(tmp_path: Path, flaky_url: str, steady_url: str) -> dict[str, Any]:
    """Two client keys, an admin key, a classifier, and a route that fails over
    from ``flaky`` to ``steady``; anything else goes to the echo provider."""
    return {
        "server": {"dashboard": True, "admin_key": ADMIN_KEY},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "keys": [
            {"name": "team-a", "key_sha256": hashlib.sha256(TEAM_A.encode()).hexdigest()},
            {"name": "team-b", "key_sha256": hashlib.sha256(TEAM_B.encode()).hexdigest()},
        ],
        "classifiers": [{"use": "tools"}],
        "providers": {
            "flaky": provider("openai", flaky_url),
            "steady": provider("anthropic", steady_url),
            "echo": {"kind": "echo"},
        },
        "router": {"default": "echo", "routes": [{"model": "failover", "to": ["flaky/model-a", "steady/model-b"]}]},
    }


@pytest.fixture
def rich(start_router, fakes, tmp_path):
    flaky, steady = fakes(), fakes()
    router = start_router(rich_config(tmp_path, flaky.url, steady.url))
    return router, flaky, steady


@contextlib.asynccontextmanager
async def ticking(router) -> AsyncIterator[None]:
    """The fleet's ticker running (``event: stats`` and ``event: health`` once a
    second), as a served router has it; the test fixture's router starts without."""
    await router.ready
    await router.runtime.fleet.start()
    try:
        yield
    finally:
        await router.runtime.fleet.aclose()


async def open_dashboard(browser: Browser, router, key: str | None = ADMIN_KEY, health: bool = False) -> None:
    """Open the page and wait until it has settled: connected, its charts drawn
    and, with ``health`` (where the fleet's ticker runs), its health strip
    filled, so nothing above the table moves a row between finding it and
    clicking it."""
    await browser.goto(f"{router.url}/dashboard" + (f"?key={key}" if key else ""))
    await browser.wait_for(CONNECTED)
    await browser.wait_for("document.querySelectorAll('#charts canvas').length === 7")
    if health:
        await browser.wait_for("document.querySelector('#health .fleet') !== null")


async def screenshot(browser: Browser, tmp_path: Path, name: str) -> None:
    where = Path(os.environ.get("TORNROUTER_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    await browser.screenshot(str(where / name))


async def pick(browser: Browser, select_id: str, value: str) -> None:
    """Choose ``value`` in a filter's select as a user does (it fires ``change``)."""
    await browser.evaluate(
        f"""(() => {{ const s = document.getElementById({json.dumps(select_id)});
            s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"""
    )


async def options(browser: Browser, select_id: str) -> list[str]:
    return await browser.evaluate(
        f"Array.from(document.getElementById({json.dumps(select_id)}).options).slice(1).map(o => o.value)"
    )


async def text_of(browser: Browser, selector: str) -> str:
    return await browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def entry(request_id: str, **fields: Any) -> dict[str, Any]:
    """A log entry as the router writes one, for what no request here makes."""
    base = {
        "ts_ms": 1_790_000_000_000, "id": request_id, "endpoint": OPENAI, "provider": "echo",
        "requested_model": "local", "sent_model": "local", "duration_ms": 3.2, "tags": [], "plugins": [],
        "system": None, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "response": {"content": [{"type": "text", "text": "echo: hi"}], "stop_reason": "end_turn", "model": "local"},
        "error": None, "status": 200, "stream": False, "usage": {"input_tokens": 1, "output_tokens": 3},
        "ttft_ms": None, "routing": {"tags": {}, "matched": "default"}, "lossy": [], "cancelled": False,
        "attempts": [], "key": None, "cost_usd": None, "continued": None, "cache": None, "overhead_ms": 0.4,
        "token_count": None, "session": None, "affinity": None, "entry_error": None, "dry_run": False,
        "bodies": "full", "instance": "gw-test:1", "worker": None,
    }
    return {**base, **fields}


# --- the vendored chart library -------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_chart_library_is_served_with_its_version_and_a_long_cache(router):
    served = await router.get("/dashboard")
    page = served.body.decode()
    policy = served.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in policy and "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    library = await router.get("/dashboard/static/uplot/uPlot.iife.min.js?v=1.6.32")
    assert library.code == 200
    assert library.headers["Content-Type"] == "text/javascript"
    assert library.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The version the page asks for is the one vendored.
    assert library.body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert 'src="dashboard/static/uplot/uPlot.iife.min.js?v=1.6.32"' in page
    assert 'href="dashboard/static/uplot/uPlot.min.css?v=1.6.32"' in page
    style = await router.get("/dashboard/static/uplot/uPlot.min.css?v=1.6.32")
    assert (style.code, style.headers["Content-Type"]) == (200, "text/css")
    assert (await router.get("/dashboard/static/uplot/LICENSE")).body.startswith(b"The MIT License")
    # Only what is under static/vendor: not the page, nor anything else of the package.
    assert (await router.get("/dashboard/static/../dashboard.html")).code in (403, 404)
    assert (await router.get("/dashboard/static/%2e%2e/%2e%2e/config/schemas.py")).code in (403, 404)
    assert (await router.get("/dashboard/static/uplot/missing.js")).code == 404


# --- filters and search ------------------------------------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_each_filter_narrows_the_rows_and_the_search_reads_the_messages(rich, browser, tmp_path):
    router, flaky, steady = rich
    async with ticking(router):
        await filters_and_search(router, browser, tmp_path)


async def filters_and_search(router, browser: Browser, tmp_path: Path) -> None:
    await open_dashboard(browser, router, health=True)
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    sent = {
        "a-openai": await router.post(OPENAI, chat("local", "the quick brown fox"), headers=bearer(TEAM_A)),
        "b-anthropic": await router.post(ANTHROPIC, message("local", "jumps over"),
                                         headers={**bearer(TEAM_B), "X-Claude-Code-Session-Id": "sess-42"}),
        "a-tools": await router.post(OPENAI, {**chat("local", "what is the weather"), "tools": [weather]},
                                     headers=bearer(TEAM_A)),
        "a-responses": await router.post(RESPONSES, {"model": "local", "input": "a lazy dog"}, headers=bearer(TEAM_A)),
        "b-failover": await router.post(OPENAI, chat("failover", "route me"), headers=bearer(TEAM_B)),
        "b-forbidden": await router.post(OPENAI, chat("nope,gpt-x"), headers=bearer(TEAM_B)),
    }
    assert [r.code for r in sent.values()] == [200, 200, 200, 200, 200, 400]
    ids = {name: r.headers["x-request-id"] for name, r in sent.items()}
    await browser.wait_for(f"{ROWS}.length === 6")

    # Each select offers what the rows have.
    assert await options(browser, "f-key") == ["team-a", "team-b"]
    assert await options(browser, "f-endpoint") == sorted([OPENAI, ANTHROPIC, RESPONSES])
    assert await options(browser, "f-status") == ["2xx", "4xx"]
    assert await options(browser, "f-tag") == ["tools"]
    assert await options(browser, "f-session") == ["sess-42"]
    assert await options(browser, "f-provider") == ["echo", "flaky"]
    assert {"local", "failover", "model-a"} <= set(await options(browser, "f-model"))
    await browser.wait_for(f"{sum_of('2xx')} === 5")  # the charts have them too
    await pick(browser, "f-status", "2xx")
    await screenshot(browser, tmp_path, "dashboard-table.png")
    await pick(browser, "f-status", "")

    async def shown() -> set[str]:
        return set(await browser.evaluate(VISIBLE))

    expected = [
        ("f-key", "team-a", {"a-openai", "a-tools", "a-responses"}),
        ("f-key", "team-b", {"b-anthropic", "b-failover", "b-forbidden"}),
        ("f-endpoint", ANTHROPIC, {"b-anthropic"}),
        ("f-endpoint", RESPONSES, {"a-responses"}),
        ("f-status", "4xx", {"b-forbidden"}),
        ("f-tag", "tools", {"a-tools"}),
        ("f-session", "sess-42", {"b-anthropic"}),
        ("f-provider", "flaky", {"b-failover"}),
        ("f-model", "failover", {"b-failover"}),
    ]
    for select_id, value, names in expected:
        await pick(browser, select_id, value)
        assert await shown() == {ids[n] for n in names}, (select_id, value)
        await pick(browser, select_id, "")
        assert len(await shown()) == 6

    # Two filters at once: both must hold.
    await pick(browser, "f-key", "team-a")
    await pick(browser, "f-endpoint", OPENAI)
    assert await shown() == {ids["a-openai"], ids["a-tools"]}
    await pick(browser, "f-key", "")
    await pick(browser, "f-endpoint", "")

    # The search reads the messages and the answers, not only the columns.
    await browser.evaluate("document.getElementById('filter').focus()")
    await browser.type_text("brown fox")
    await browser.wait_for(f"{VISIBLE}.length === 1")
    assert await shown() == {ids["a-openai"]}
    await browser.evaluate("document.getElementById('filter').value = ''")
    await browser.type_text("lazy")
    await browser.wait_for(f"{VISIBLE}.length === 1")
    assert await shown() == {ids["a-responses"]}
    await browser.evaluate("document.getElementById('filter').value = ''")
    await browser.type_text("echo: what is")  # the answer's text
    await browser.wait_for(f"{VISIBLE}.length === 1")
    assert await shown() == {ids["a-tools"]}
    assert browser.errors == []


# --- pause and resume ---------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_pause_holds_new_rows_and_counts_them_and_resume_shows_them(router, browser):
    await open_dashboard(browser, router, key=None)
    first = (await router.post(OPENAI, chat("local", "before"))).headers["x-request-id"]
    await browser.wait_for(f"{ROWS}.length === 1")

    await browser.click("#pause")
    assert await text_of(browser, "#pause") == "Resume"
    held = [(await router.post(OPENAI, chat("local", f"while paused {i}"))).headers["x-request-id"] for i in range(3)]
    await browser.wait_for("document.getElementById('new-count').textContent === '3 new while paused'")
    assert await browser.evaluate(f"Array.from({ROWS}, tr => tr.dataset.id)") == [first]

    await browser.click("#pause")
    await browser.wait_for(f"{ROWS}.length === 4")
    assert await browser.evaluate(f"Array.from({ROWS}, tr => tr.dataset.id)") == [*held[::-1], first]
    assert await text_of(browser, "#new-count") == ""
    assert await text_of(browser, "#stat-requests") == "4"
    assert browser.errors == []


# --- the request story ------------------------------------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_the_story_of_a_failed_over_request_and_its_curl_command(rich, browser, tmp_path):
    router, flaky, steady = rich
    async with ticking(router):
        await failed_over_story(router, flaky, steady, browser, tmp_path)


async def failed_over_story(router, flaky, steady, browser: Browser, tmp_path: Path) -> None:
    flaky.then(Reply(status=500, body=error_body("openai", "flaky is down")))
    await open_dashboard(browser, router, health=True)
    answered = await router.post(OPENAI, {
        "model": "failover",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "what is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "look", "arguments": '{"zoom": 2, "area": "left"}'},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        ],
    }, headers=bearer(TEAM_A))
    assert answered.code == 200
    request_id = answered.headers["x-request-id"]
    await browser.wait_for(f"{ROWS}.length === 1")
    await browser.click(f'#rows tr[data-id="{request_id}"]')
    await browser.wait_for("!document.getElementById('detail').hidden")

    # Both attempts, in order: the 500 of flaky, then steady's answer.
    attempts = await browser.evaluate(
        "Array.from(document.querySelectorAll('#detail .attempts-table tr.attempt'),"
        " tr => Array.from(tr.cells, td => td.textContent))"
    )
    assert [a[1:4] for a in attempts] == [["flaky", "model-a", "500"], ["steady", "model-b", "200"]]
    assert "flaky is down" in attempts[0][5]
    assert await browser.evaluate("document.querySelector('#detail .attempts-table tr.attempt').className") == "attempt failed"
    assert "fell back flaky/model-a → steady/model-b" in await text_of(browser, "#detail .attempts .story-note")
    routing = await text_of(browser, "#detail .routing")
    assert "route #0" in routing and "failover" in routing
    assert await browser.evaluate(
        "Array.from(document.querySelectorAll('#detail .routing .candidate'), c => c.textContent)"
    ) == ["flaky/model-a", "steady/model-b"]
    timings = await text_of(browser, "#detail .timings")
    assert "Upstream" in timings and "over 2 attempts" in timings and "Overhead" in timings
    assert "team-a" in await text_of(browser, "#detail .overview")

    # The conversation, readably: the tool call's arguments pretty-printed, the image as a thumbnail.
    assert await text_of(browser, "#detail .messages .tool-input") == json.dumps({"zoom": 2, "area": "left"}, indent=2)
    assert await browser.evaluate("document.querySelector('#detail .messages img.thumb').getAttribute('src')") == \
        "https://images.example/cat.png"
    assert "a cat" in await text_of(browser, "#detail .messages .tool-result")
    await screenshot(browser, tmp_path, "dashboard-story.png")
    await browser.evaluate("document.querySelector('#detail .system').scrollIntoView()")
    await screenshot(browser, tmp_path, "dashboard-story-messages.png")

    # Copy as curl: headless chromium on http has no clipboard, so the command is shown to copy by hand.
    await browser.click("#copy-curl")
    command = await browser.wait_for("document.querySelector('#detail .curl-box textarea')?.value")
    assert command == await browser.evaluate(f"tornrouterDashboard.curl({json.dumps(request_id)})")
    assert TEAM_A not in command and ADMIN_KEY not in command and "$TORNROUTER_KEY" in command

    # Run it: the same request, sent to the router again, with the key supplied.
    flaky.then(Reply(status=500, body=error_body("openai", "still down")))
    before = len(steady.requests)
    code, body = await run_curl(command, TEAM_A)
    assert code == 200, body
    assert json.loads(body)["object"] == "chat.completion"
    assert len(steady.requests) == before + 1
    resent = steady.requests[-1].body
    assert resent["system"] == "You are terse."
    assert [m["role"] for m in resent["messages"]] == ["user", "assistant", "user"]
    await browser.wait_for(f"{ROWS}.length === 2")
    assert browser.errors == []


@pytest.mark.gen_test(timeout=120)
async def test_the_story_shows_what_a_plugin_changed_and_the_time_queued(start_router, fakes, browser, tmp_path):
    """A redacting plugin and a provider with ``max_concurrent: 1`` whose first
    answer is held: the second request's story shows the redaction (plugin,
    hook, path, before and after) and its wait for the slot."""
    slow = fakes()
    gate = asyncio.Event()
    slow.then(Reply(gate=gate), Reply())
    router = start_router({
        "server": {"dashboard": True},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "plugins": [{"use": "redact", "settings": {"patterns": [r"\d{16}"]}}],
        "providers": {"slow": provider("openai", slow.url, max_concurrent=1)},
        "router": {"default": "slow/model-a"},
    })
    await open_dashboard(browser, router, key=None)
    first = asyncio.ensure_future(router.post(OPENAI, chat("any", "hold the slot")))
    await poll(lambda: len(slow.requests) == 1, "the first request upstream")
    second = asyncio.ensure_future(router.post(OPENAI, chat("any", "my card is 4111111111111111")))
    await poll(lambda: router.runtime.providers["slow"].limit.queued == 1, "the second request to queue")
    gate.set()
    first, second = await first, await second
    assert first.code == 200 and second.code == 200
    request_id = second.headers["x-request-id"]
    await browser.wait_for(f"{ROWS}.length === 2")
    await browser.click(f'#rows tr[data-id="{request_id}"]')
    await browser.wait_for("!document.getElementById('detail').hidden")

    plugins = await text_of(browser, "#detail .plugins-story")
    assert "redact · pre_request · 1 change" in plugins
    assert "replace /messages/0/content/0/text" in plugins
    assert 'before: "my card is 4111111111111111"' in plugins and 'after:  "my card is [REDACTED]"' in plugins
    timings = await text_of(browser, "#detail .timings")
    assert "Queue" in timings and "Overhead" in timings
    queue_share = await browser.evaluate("parseFloat(document.querySelector('#detail .timeline .t-queue').style.width)")
    assert queue_share > 0
    attempt = await browser.evaluate(
        "Array.from(document.querySelector('#detail .attempts-table tr.attempt').cells, td => td.textContent)"
    )
    assert "(queued " in attempt[4]
    await screenshot(browser, tmp_path, "dashboard-story-plugins.png")
    assert browser.errors == []


async def run_curl(command: str, key: str) -> tuple[int, str]:
    """Run a copied curl command in bash with ``$TORNROUTER_KEY`` set: the HTTP status and the body."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command + " -w '\\n%{http_code}'", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TORNROUTER_KEY": key},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


@pytest.mark.gen_test(timeout=120)
async def test_curl_reproduces_a_request_of_each_api(rich, browser):
    router, flaky, steady = rich
    await open_dashboard(browser, router)
    tool_turns = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                                     {"type": "text", "text": "and so?"}]},
    ]
    sent = {
        OPENAI: await router.post(OPENAI, chat("local", "from chat", stream=True), headers=bearer(TEAM_A)),
        ANTHROPIC: await router.post(ANTHROPIC, {"model": "local", "max_tokens": 50, "system": "be brief",
                                                 "messages": tool_turns}, headers=bearer(TEAM_A)),
        RESPONSES: await router.post(RESPONSES, {"model": "local", "instructions": "be brief", "input": "from responses"},
                                     headers=bearer(TEAM_A)),
        "/v1/messages/count_tokens": await router.post("/v1/messages/count_tokens", {
            "model": "local", "messages": [{"role": "user", "content": "count me"}]}, headers=bearer(TEAM_A)),
    }
    assert [r.code for r in sent.values()] == [200] * 4
    await browser.wait_for(f"{ROWS}.length === 4")
    for path, first in sent.items():
        command = await browser.evaluate(f"tornrouterDashboard.curl({json.dumps(first.headers['x-request-id'])})")
        assert f"/{path.lstrip('/')}'" in command and TEAM_A not in command
        code, body = await run_curl(command, TEAM_A)
        assert code == 200, (path, body)
        if path == OPENAI:  # asked as a stream, answered as one
            assert body.startswith("data: ") and "echo: from chat" in body
        elif path == ANTHROPIC:
            assert json.loads(body)["content"][0]["text"] == "echo: and so?"
        elif path == RESPONSES:
            assert "echo: from responses" in body
        else:
            assert json.loads(body) == json.loads(first.body)  # the same count
    await browser.wait_for(f"{ROWS}.length === 8")
    # The resent requests are logged as the first ones were.
    entries = {e["id"]: e for e in router.log_entries()}
    resent = [e for e in entries.values() if e["id"] not in {r.headers["x-request-id"] for r in sent.values()}]
    originals = [entries[r.headers["x-request-id"]] for r in sent.values()]
    for original in originals:
        again = next(e for e in resent if e["endpoint"] == original["endpoint"])
        assert (again["system"], again["messages"], again["stream"]) == \
            (original["system"], original["messages"], original["stream"])
    assert browser.errors == []


@pytest.mark.gen_test(timeout=90)
async def test_entries_without_bodies_dry_runs_and_mirror_records(router, browser):
    await open_dashboard(browser, router, key=None)
    hashed = entry(
        "hashed-1", bodies="hash", system={"chars": 14, "sha256": "ab" * 32},
        messages=[{"role": "user", "content": [{"type": "text", "chars": 42, "sha256": "cd" * 32}]},
                  {"role": "assistant", "content": [{"type": "tool_use", "name": "get_weather", "chars": 17, "sha256": "ef" * 32}]}],
        response={"content": [{"type": "text", "chars": 7, "sha256": "01" * 32}], "stop_reason": "end_turn", "model": "local"},
    )
    dry = entry("dry-1", dry_run=True, provider=None, cost_usd=None, response=None, usage=None,
                routing={"tags": {}, "matched": "route", "index": 2, "pattern": "gpt-*"})
    primary = entry("mirrored-1", routing={"tags": {}, "matched": "route", "index": 0, "pattern": "gpt-*"})
    mirrors = [
        {"type": "mirror", "ts_ms": 1_790_000_000_100, "id": "mirrored-1", "route": 0, "pattern": "gpt-*",
         "target": "candidate/new-model", "status": 200, "error": None, "latency_ms": 120.0,
         "usage": {"input_tokens": 1, "output_tokens": 2}, "cost_usd": 0.0002,
         "compare": {"exact": False, "similarity": 0.5, "same_tool_calls": True, "same_stop_reason": True}},
        {"type": "mirror", "ts_ms": 1_790_000_000_200, "id": "elsewhere", "route": 0, "pattern": "gpt-*",
         "target": "candidate/new-model", "status": None, "error": "timed out", "latency_ms": 30000.0,
         "usage": None, "cost_usd": None, "compare": None},
    ]
    trimmed = entry("trimmed-1", system=None, messages=None, response=None, trimmed=True)
    for line in [hashed, dry, primary, *mirrors, trimmed]:
        router.runtime.events.publish(json.dumps(line))
    await browser.wait_for(f"{ROWS}.length === 4")  # a mirror record is not a request row

    # An entry that crossed from another process without its texts (over 1 MB).
    await browser.click('#rows tr[data-id="trimmed-1"]')
    await browser.wait_for("document.querySelector('#detail .overview')?.textContent.includes('Trimmed')")
    assert await browser.evaluate("document.getElementById('copy-curl').disabled")
    assert await text_of(browser, "#detail .messages .none") == "none"

    await browser.click('#rows tr[data-id="hashed-1"] td.time')
    await browser.wait_for("document.querySelector('#detail .system-summary') !== null")
    assert await text_of(browser, "#detail .system-summary") == "system · 14 chars · sha256 abababababababab… (not logged)"
    summaries = await browser.evaluate("Array.from(document.querySelectorAll('#detail .messages .summary'), n => n.textContent)")
    assert summaries == ["text · 42 chars · sha256 cdcdcdcdcdcdcdcd… (not logged)",
                         "tool_use · 17 chars · sha256 efefefefefefefef… · get_weather (not logged)"]
    assert "7 chars" in await text_of(browser, "#detail .response .summary")
    assert await browser.evaluate("document.getElementById('copy-curl').disabled")

    await browser.click('#rows tr[data-id="dry-1"] td.time')
    await browser.wait_for("document.querySelector('#detail .overview').textContent.includes('Dry run')")
    assert "nothing sent upstream" in await text_of(browser, "#detail .overview")
    assert await text_of(browser, '#rows tr[data-id="dry-1"] .chip.dry') == "dry run"
    assert "none: a dry run" in await text_of(browser, "#detail .response")

    await browser.click('#rows tr[data-id="mirrored-1"] td.time')
    await browser.wait_for("document.querySelector('#detail .mirror-story') !== null")
    story = await text_of(browser, "#detail .mirror-story")
    assert "candidate/new-model" in story and "similarity 0.50" in story and "same tool calls" in story

    # The summary per route: two mirrored, one error, of the one compared: similarity 0.50.
    assert not await browser.evaluate("document.getElementById('mirrors').hidden")
    cells = await browser.evaluate("Array.from(document.querySelectorAll('#mirror-rows tr td'), td => td.textContent)")
    assert cells[:6] == ["#0 gpt-*", "candidate/new-model", "2", "1", "0%", "0.50"]
    assert browser.errors == []


# --- text stays text ----------------------------------------------------------------------


PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b id="xss-b">b</b>'


@pytest.mark.gen_test(timeout=90)
async def test_no_field_is_ever_markup_and_no_url_runs(router, browser):
    await open_dashboard(browser, router, key=None)
    evil = entry(
        PAYLOAD, endpoint=PAYLOAD, provider=PAYLOAD, requested_model=PAYLOAD, sent_model=PAYLOAD + "2",
        tags=[PAYLOAD], plugins=[PAYLOAD], key=PAYLOAD, session=PAYLOAD, instance=PAYLOAD, worker=PAYLOAD,
        error=PAYLOAD, status=500, system=PAYLOAD, lossy=[PAYLOAD],
        routing={"tags": {PAYLOAD: PAYLOAD}, "matched": "route", "index": PAYLOAD, "pattern": PAYLOAD,
                 "candidates": [PAYLOAD, PAYLOAD]},
        attempts=[{"provider": PAYLOAD, "model": PAYLOAD, "status": 500, "error": PAYLOAD, "duration_ms": 1,
                   "upstream_body": PAYLOAD}],
        continued={"from": PAYLOAD, "to": PAYLOAD, "after_chars": 3, "error": PAYLOAD},
        affinity={"pin": "moved", "target": PAYLOAD, "from": PAYLOAD, "reason": PAYLOAD},
        cache={"outcome": PAYLOAD, "reason": PAYLOAD},
        messages=[{"role": PAYLOAD, "content": [
            {"type": "text", "text": PAYLOAD},
            {"type": "image", "url": "javascript:window.__xss=3"},
            {"type": "image", "url": 'https://x.example/a.png" onerror="window.__xss=4'},
            {"type": "image", "url": "data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9NTwvc2NyaXB0Pg=="},
            {"type": "tool_call", "id": PAYLOAD, "name": PAYLOAD, "raw_arguments": json.dumps({"a": PAYLOAD})},
            {"type": "tool_result", "tool_call_id": PAYLOAD, "content": [{"type": "text", "text": PAYLOAD}]},
            {"type": "thinking", "thinking": PAYLOAD},
            {"type": PAYLOAD, "format": PAYLOAD, "data": PAYLOAD},
        ]}],
        response={"content": [{"type": "text", "text": PAYLOAD}], "stop_reason": PAYLOAD, "model": PAYLOAD, "id": PAYLOAD},
    )
    mirror = {"type": "mirror", "ts_ms": 1, "id": PAYLOAD, "route": PAYLOAD, "pattern": PAYLOAD, "target": PAYLOAD,
              "status": 500, "error": PAYLOAD, "latency_ms": 1, "usage": None, "cost_usd": None, "compare": None}
    router.runtime.events.publish(json.dumps(evil))
    router.runtime.events.publish(json.dumps(mirror))
    # Names in the health strip and in the charts' legends come from the feed too.
    router.runtime.events.announce("health", json.dumps({
        "providers": [{"name": PAYLOAD, "breaker": PAYLOAD, "in_flight": 1, "queued": 0, "error_rate": 0.5,
                       "p95_ms": 12.0, "requests": 2}],
        "instances": [{"instance": PAYLOAD, "worker": PAYLOAD, "seen_s_ago": 0.1}],
    }))
    await browser.wait_for("tornrouterDashboard.chart('errors') !== null")  # the window's history is in
    second = int(await browser.evaluate("tornrouterDashboard.chartData('requests')[0].at(-1)")) + 1
    router.runtime.events.announce("stats", json.dumps({
        "t": [second], "requests": {"2xx": [1]}, "error_rate": {PAYLOAD: [0.5]},
        "cost": {"provider": {PAYLOAD: [0.01]}, "model": {}, "key": {}},
    }))
    await browser.wait_for(f"{sum_of(PAYLOAD, 'errors')} === 50")
    assert await browser.evaluate(
        f"document.querySelector('#chart-cost .u-legend').textContent.includes({json.dumps(PAYLOAD)})"
    )
    assert await browser.evaluate("document.querySelector('#health .health-card').dataset.provider") == PAYLOAD
    await browser.wait_for(f"{ROWS}.length === 1")
    await browser.click("#rows tr[data-id] td.time")
    await browser.wait_for("!document.getElementById('detail').hidden")
    await browser.click("#detail .block.thinking summary")
    await browser.click("#copy-curl")
    await browser.wait_for("document.querySelector('#detail .curl-box') !== null")
    for select_id in ("f-model", "f-provider", "f-key", "f-tag", "f-session", "f-endpoint"):
        assert PAYLOAD in await options(browser, select_id)

    assert await browser.evaluate("window.__xss") is None
    assert await browser.evaluate("document.querySelectorAll('script:not([src])').length") == 1  # the page's own
    assert await browser.evaluate("document.getElementById('xss-b')") is None
    # The text arrived as text, everywhere it is shown.
    assert await browser.evaluate(
        f"document.querySelector('#rows tr td.model').textContent.includes({json.dumps(PAYLOAD)})"
    )
    assert PAYLOAD in await text_of(browser, "#detail .error-box")
    assert json.loads(await text_of(browser, "#detail .messages .tool-input")) == {"a": PAYLOAD}
    # No image from a javascript: or data:text URL, nor from a URL that tries to close its attribute.
    assert await browser.evaluate("Array.from(document.querySelectorAll('img'), i => i.getAttribute('src'))") == []
    # The second lock: markup that got in anyway could not run a script of its own.
    assert await browser.evaluate("""(() => {
        const s = document.createElement('script'); s.textContent = 'window.__xss = 6'; document.body.appendChild(s);
        const i = document.createElement('img'); i.setAttribute('onerror', 'window.__xss = 7'); i.src = 'data:,';
        document.body.appendChild(i);
        return new Promise(done => setTimeout(() => done(window.__xss === undefined), 200)); })()""")
    assert browser.errors == []


# --- many rows ----------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=180)
async def test_ten_thousand_rows_keep_the_page_responsive_and_bounded(router, browser):
    await open_dashboard(browser, router, key=None)
    total = 10_000
    for i in range(total):
        router.runtime.events.publish(json.dumps(entry(
            f"bulk-{i}", ts_ms=1_790_000_000_000 + i, requested_model=f"m{i % 7}", sent_model=f"m{i % 7}",
            messages=[{"role": "user", "content": [{"type": "text", "text": f"message number {i}"}]}],
        )))
        if i % 500 == 499:  # the bus drops what a feed has not sent past 1000: let the feed catch up
            await poll(lambda: not any(s.pending for s in router.runtime.events._subscribers), "the feed to send")
    await browser.wait_for("document.getElementById('stat-requests').textContent === '10.0k'", timeout=120)

    # Bounded: the newest 500 rows and entries, the newest first.
    assert await browser.evaluate(f"{ROWS}.length") == 500
    assert await browser.evaluate("tornrouterDashboard.entriesHeld()") == 500
    assert await browser.evaluate(f"{ROWS}[0].dataset.id") == "bulk-9999"
    assert await browser.evaluate(f"{ROWS}[499].dataset.id") == "bulk-9500"
    # Responsive: a click opens the story, a search filters.
    await browser.click('#rows tr[data-id="bulk-9876"]')
    await browser.wait_for("document.getElementById('detail-title').textContent === 'm6'")
    await browser.evaluate("document.getElementById('filter').focus()")
    await browser.type_text("number 9777")
    await browser.wait_for(f"{VISIBLE}.length === 1")
    assert await browser.evaluate(VISIBLE) == ["bulk-9777"]
    assert browser.errors == []


# --- charts and the health strip ----------------------------------------------------------


def sum_of(series: str, chart: str = "requests") -> str:
    """JavaScript: the sum of one series of a chart (by its legend label)."""
    return (f"(() => {{ const u = tornrouterDashboard.chart({json.dumps(chart)}); if (!u) return null;"
            f" const i = u.series.findIndex(s => s.label === {json.dumps(series)});"
            f" return i < 0 ? null : u.data[i].reduce((a, v) => a + (v || 0), 0); }})()")


async def hover_last_traffic(browser: Browser, chart: str) -> str:
    """Move the mouse over the chart's newest steps, a pixel at a time from the
    right, until the cursor is on a step with requests; the legend's value of
    the first series there (checked to be that step's)."""
    js_chart = f"tornrouterDashboard.chart({json.dumps(chart)})"
    box = await browser.evaluate(f"""(() => {{ const r = {js_chart}.over.getBoundingClientRect();
        return {{right: Math.floor(r.right) - 1, y: Math.round(r.top + r.height / 2)}}; }})()""")
    for dx in range(40):
        await browser.move_mouse(box["right"] - dx, box["y"])
        under = await browser.evaluate(f"""(() => {{ const u = {js_chart}, i = u.cursor.idx;
            const v = document.querySelector('#chart-{chart} .u-legend .u-series:nth-child(2) .u-value');
            return i === null ? null : {{value: u.data[1][i], shown: v.textContent}}; }})()""")
        if under and under["value"]:
            assert float(under["shown"]) == pytest.approx(under["value"], rel=0.01)
            return under["shown"]
    raise AssertionError("no step with requests under the mouse")


@pytest.mark.gen_test(timeout=120)
async def test_charts_draw_the_aggregate_and_move_with_traffic_and_the_strip_shows_an_open_breaker(
        start_router, fakes, tmp_path, browser):
    flaky = fakes()
    config = rich_config(tmp_path, flaky.url, flaky.url)
    config["providers"]["flaky"]["breaker"] = {"failures": 1, "window_s": 60, "cooldown_s": 600}
    config["router"]["routes"].append({"model": "only-flaky", "to": "flaky/model-a"})
    config["prices"] = {"echo/local": {"input": 1000.0, "output": 2000.0}}  # USD per million tokens
    router = start_router(config)
    async with ticking(router):
        sent = await charts_and_health(router, flaky, browser)

        # Another window: its history is read at once, in its own steps, and
        # each second's requests are added to the current step.
        await browser.click('#windows button[data-window="3600"]')
        await browser.wait_for("tornrouterDashboard.chartData('requests')?.[0].length === 360")
        assert round(await browser.evaluate(sum_of("2xx")) * 10) == sent  # per second over 10 s steps
        for i in range(3):
            assert (await router.post(OPENAI, chat("local", f"later {i}"), headers=bearer(TEAM_A))).code == 200
        sent += 3
        await browser.wait_for(f"Math.round({sum_of('2xx')} * 10) === {sent}", timeout=20)
        await browser.click('#windows button[data-window="300"]')
        await browser.wait_for(f"tornrouterDashboard.chartData('requests')?.[0].length === 300 && {sum_of('2xx')} === {sent}")

    # The charts hold still now: hovering shows the values under the cursor in the legend.
    assert float(await hover_last_traffic(browser, "requests")) > 0
    await screenshot(browser, tmp_path, "dashboard-charts.png")
    assert browser.errors == []


async def charts_and_health(router, flaky, browser: Browser) -> int:
    """The charts move with traffic, the strip shows a breaker opening; how many requests succeeded."""
    await open_dashboard(browser, router, health=True)
    await browser.wait_for("document.querySelectorAll('#charts canvas').length === 7")
    assert await browser.evaluate("tornrouterDashboard.chartData('requests')[0].length") == 300
    assert await browser.evaluate(sum_of("2xx")) == 0
    assert await browser.evaluate("document.querySelector('#windows [aria-pressed=true]').textContent") == "5 min"

    # Traffic in waves: each second's event moves the charts on and adds its requests.
    sent = 0
    for wave in range(3):
        last = await browser.evaluate("tornrouterDashboard.chartData('requests')[0].at(-1)")
        for i in range(4 + wave):
            assert (await router.post(OPENAI, chat("local", f"wave {wave} {i}"), headers=bearer(TEAM_A))).code == 200
            sent += 1
        await browser.wait_for(f"{sum_of('2xx')} === {sent}", timeout=20)
        await browser.wait_for(f"tornrouterDashboard.chartData('requests')[0].at(-1) > {last}")
    tokens = await browser.evaluate(sum_of("out", "tokens"))
    assert tokens > 0
    # Cost per minute by provider, then (the selector) by key and by model.
    assert await browser.evaluate(sum_of("echo", "cost")) > 0
    for by, name in (("key", "team-a"), ("model", "local")):
        await pick(browser, "cost-by", by)
        labels = await browser.evaluate("tornrouterDashboard.chart('cost').series.slice(1).map(s => s.label)")
        assert labels == [name], by
        assert await browser.evaluate(sum_of(name, "cost")) > 0
    assert await browser.evaluate("tornrouterDashboard.chartData('latency')[1].some(v => v !== null)")

    # A failure opens flaky's breaker: its card says so, and its error rate is drawn.
    flaky.then(Reply(status=500, body=error_body("openai", "flaky is down")))
    failed = await router.post(OPENAI, chat("only-flaky", "fail"), headers=bearer(TEAM_A))
    assert failed.code >= 500
    await browser.wait_for("document.querySelector('#health .health-card[data-provider=\"flaky\"]')?.dataset.breaker === 'open'",
                           timeout=20)
    card = await text_of(browser, '#health .health-card[data-provider="flaky"]')
    assert "open" in card and "100%" in card
    await browser.wait_for(f"{sum_of('flaky', 'errors')} > 0", timeout=20)
    assert "1 process reporting" in await text_of(browser, "#health .fleet")
    return sent


# --- the fleet ------------------------------------------------------------------------------


SERVED = "Array.from(document.querySelectorAll('#rows tr[data-id] td.served'), td => td.textContent)"


@pytest.mark.gen_test(timeout=180)
async def test_the_page_shows_both_workers_of_processes_2(spawn, tmp_path, browser):
    router = await spawn(fleet_config(tmp_path, "router"), "--processes", "2").start()
    await router.wait_for("starting (request log:", count=2)
    await open_dashboard(browser, router, key=None)
    await browser.wait_for("document.querySelector('#health .fleet')?.textContent.includes('2 processes reporting')",
                           timeout=DEADLINE_S)
    sent: list[str] = []

    async def both_workers_shown() -> bool:
        sent.extend(await send(router, 10, f"batch {len(sent)}"))
        await browser.wait_for(f"{ROWS}.length === {len(sent)}", timeout=DEADLINE_S)
        return {s.rsplit(" · ", 1)[1] for s in await browser.evaluate(SERVED)} == {"w0", "w1"}

    await poll(both_workers_shown, "rows of both workers on one page", timeout=DEADLINE_S)
    instance = f"{socket.gethostname()}:{router.port}"
    assert {s.rsplit(" · ", 1)[0] for s in await browser.evaluate(SERVED)} == {instance}
    # The counters add up to what was sent, whichever worker served it.
    assert await text_of(browser, "#stat-requests") == str(len(sent))
    await browser.wait_for(f"{sum_of('2xx')} === {len(sent)}", timeout=DEADLINE_S)
    assert browser.errors == []


@needs_redis
@pytest.mark.gen_test(timeout=180)
async def test_the_page_of_one_instance_shows_the_other_on_redis(spawn, tmp_path, redis_server, browser):
    alpha = await redis_instance(spawn, tmp_path, "alpha", redis_server.url).start()
    beta = await redis_instance(spawn, tmp_path, "beta", redis_server.url).start()
    await browser.goto(alpha.url + "/dashboard")
    await browser.wait_for(CONNECTED)
    await browser.wait_for("document.querySelector('#health .fleet')?.textContent.includes('2 processes reporting')",
                           timeout=DEADLINE_S)
    sent = await send(alpha, 4, "to alpha") + await send(beta, 3, "to beta")
    await browser.wait_for(f"{ROWS}.length === 7", timeout=DEADLINE_S)
    assert Counter(await browser.evaluate(SERVED)) == {"alpha": 4, "beta": 3}
    assert set(await browser.evaluate(f"Array.from({ROWS}, tr => tr.dataset.id)")) == set(sent)
    assert await text_of(browser, "#stat-requests") == "7"
    await browser.wait_for(f"{sum_of('2xx')} === 7", timeout=DEADLINE_S)
    await screenshot(browser, tmp_path, "dashboard-fleet.png")
    assert browser.errors == []
