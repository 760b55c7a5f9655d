"""A headless chromium for tests, driven over the DevTools protocol (CDP).

``Browser.launch()`` starts Debian's chromium on a fresh profile with remote
debugging on a port of its choosing, and attaches to its first tab through a
Tornado websocket.  The tests then load a page, evaluate JavaScript in it,
wait for a condition, click an element with real mouse events, and take
screenshots, all awaited on the test's own IOLoop, so the router under test
keeps serving while the browser talks to it.

Why Tornado's websocket client and not a CDP library: every synchronous one
(``websocket-client``, ``pychrome``) would block the very loop that has to
answer the page's requests; the async ones bring a second event-loop framework
or download their own browser build (``playwright``), which this machine
cannot.  CDP is a handful of JSON messages: ``{id, method, params}`` out,
``{id, result | error}`` or ``{method, params}`` (an event) back.
https://chromedevtools.github.io/devtools-protocol/
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # chromium picks; it writes the port to DevToolsActivePort
)


def find_chromium() -> str | None:
    """The chromium binary (``$CHROMIUM`` overrides the lookup), or None."""
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        path = name and shutil.which(name)
        if path:
            return path
    return None


class BrowserError(Exception):
    """CDP answered with an error, the page threw, or a wait ran out of time."""


class Browser:
    def __init__(self, proc: subprocess.Popen, profile: str, ws: WebSocketClientConnection) -> None:
        self.proc = proc
        self.profile = profile
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.errors: list[str] = []  # uncaught page exceptions and console.error calls
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def launch(cls, width: int = 1440, height: int = 900, timeout: float = 20.0) -> Browser:
        binary = find_chromium()
        if binary is None:
            raise BrowserError("chromium is not installed")
        profile = tempfile.mkdtemp(prefix="tornrouter-chromium-")
        # Output to a file, not a pipe: nobody reads it until something fails,
        # and a full pipe would stall the browser.
        log = open(os.path.join(profile, "chromium.log"), "wb")
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        try:
            port = await _wait_for_port(proc, profile, timeout)
            ws = await _attach_first_page(port, timeout)
        except BaseException:
            _stop(proc, profile)
            raise
        browser = cls(proc, profile, ws)
        await browser.send("Runtime.enable")
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return browser

    async def close(self) -> None:
        self.ws.close()
        self._reader.cancel()
        _stop(self.proc, self.profile)

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- protocol -------------------------------------------------------------

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self.ws.write_message(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        return await future

    async def _read(self) -> None:
        while True:
            raw = await self.ws.read_message()
            if raw is None:  # the browser went away: fail whoever is waiting
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(BrowserError("chromium closed the DevTools connection"))
                self._waiting.clear()
                return
            message = json.loads(raw)
            future = self._waiting.pop(message.get("id"), None) if "id" in message else None
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(BrowserError(f"CDP error: {message['error']}"))
                else:
                    future.set_result(message.get("result", {}))
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))
            elif message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in message["params"]["args"]))

    # --- what tests use -------------------------------------------------------

    async def goto(self, url: str, timeout: float = 10.0) -> None:
        """Navigate and wait until the document has loaded."""
        await self.send("Page.navigate", {"url": url})
        await self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'", timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy and return its value; raise
        ``BrowserError`` (with the last value) when ``timeout`` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() >= deadline:
                raise BrowserError(f"timed out after {timeout}s waiting for: {expression} (last value {value!r})")
            await asyncio.sleep(interval)

    async def click(self, selector: str) -> None:
        """Click the centre of the first element matching ``selector`` with real
        mouse events (pressed + released), as a user would."""
        box = await self.evaluate(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el) return null;
                el.scrollIntoView({{block: 'center'}});
                const r = el.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if box is None:
            raise BrowserError(f"nothing matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {
                "type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1,
            })

    async def move_mouse(self, x: float, y: float) -> None:
        """Move the mouse to ``(x, y)`` (CSS pixels of the viewport), as a
        user's hover does: the page sees ``mousemove`` (and ``mouseenter``)."""
        await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    async def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as an input method would
        (the page sees ``input`` events)."""
        await self.send("Input.insertText", {"text": text})

    async def press_key(self, key: str) -> None:
        """Press and release a non-printing key such as ``Escape``."""
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key})

    async def screenshot(self, path: str) -> str:
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(result["data"]))
        return path


async def _wait_for_port(proc: subprocess.Popen, profile: str, timeout: float) -> int:
    """Chromium writes its DevTools port as the first line of
    ``<profile>/DevToolsActivePort`` once it listens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    path = os.path.join(profile, "DevToolsActivePort")
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with {proc.returncode}: {_tail(profile)}")
        try:
            with open(path, encoding="ascii") as f:
                first = f.readline().strip()
            if first.isdigit():
                return int(first)
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.05)
    raise BrowserError(f"chromium did not open its DevTools port within {timeout}s: {_tail(profile)}")


async def _attach_first_page(port: int, timeout: float) -> WebSocketClientConnection:
    client = AsyncHTTPClient(force_instance=True)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:  # the first tab may be listed a moment after the port opens
            response = await client.fetch(f"http://127.0.0.1:{port}/json/list", request_timeout=timeout)
            pages = [t for t in json.loads(response.body) if t.get("type") == "page"]
            if pages:
                break
            if loop.time() >= deadline:
                raise BrowserError("chromium opened no page")
            await asyncio.sleep(0.05)
    finally:
        client.close()
    return await websocket_connect(pages[0]["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024)


def _stop(proc: subprocess.Popen, profile: str) -> None:
    """Stop chromium, then remove the throwaway profile.  SIGTERM to the main
    process lets it shut down and reap its zygote and renderers itself (killing
    the whole group at once leaves zombies where PID 1 does not reap); the
    group is killed only if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    shutil.rmtree(profile, ignore_errors=True)


def _tail(profile: str, size: int = 2000) -> str:
    try:
        with open(os.path.join(profile, "chromium.log"), "rb") as f:
            return f.read()[-size:].decode("utf-8", "replace")
    except OSError:
        return ""
