"""Routers as users run them: ``python -m tornrouter`` in a subprocess (its
port read from its log, its output kept in a file), their configs and request
logs, and the command line itself.  ``conftest.py``'s ``spawn`` fixture starts
them and checks, however a test ended, that their output has no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from tests.waiting import poll
from tests.wire import OPENAI

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0  # for anything to happen; reached only when something hangs


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tornrouter ARGS`` to its end, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "tornrouter", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def write_config(path: Path, upstream_url: str | None, log_path: Path, drain_s: float = 30.0,
                 routes: list[dict[str, Any]] | None = None, port: int = 0) -> Path:
    providers: dict[str, Any] = {"echo": {"kind": "echo"}}
    if upstream_url:
        providers["oai"] = {"kind": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-test"}
    config = {
        "server": {"host": "127.0.0.1", "port": port, "drain_s": drain_s},
        "log": {"requests": str(log_path)},
        "providers": providers,
        "router": {"default": "echo", "routes": routes if routes is not None else []},
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every line of a request log, each checked to be a whole JSON object."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "a partial last line"
    return [json.loads(line) for line in text.splitlines()]


async def status(response: asyncio.Future[HTTPResponse]) -> int:
    """The response's status; 599 for a connection closed before its end (which
    Tornado's client reports either way, raised or returned, depending on when)."""
    try:
        return (await response).code
    except HTTPClientError as exc:
        return exc.code


def said(entry: dict[str, Any]) -> str:
    """The last user message of a request log entry."""
    return entry["messages"][-1]["content"][0]["text"]


class RouterProcess:
    """``python -m tornrouter`` in a subprocess, its output in a file."""

    def __init__(self, tmp_path: Path, conf: Path, *args: str) -> None:
        self.output_path = tmp_path / f"router-{os.urandom(4).hex()}.out"
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tornrouter", "--conf", str(conf), *args],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # its own process group: kill() takes --processes workers with it
            )
        self.port = 0
        self.client = AsyncHTTPClient(force_instance=True, max_clients=50)

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    async def wait_for(self, text: str, count: int = 1) -> str:
        def seen() -> bool:
            if self.proc.poll() is not None and self.output().count(text) < count:
                raise AssertionError(f"router exited ({self.proc.returncode}) before logging {text!r}:\n{self.output()}")
            return self.output().count(text) >= count

        await poll(seen, f"{text!r} in the router's log", timeout=DEADLINE_S)
        return self.output()

    async def start(self) -> RouterProcess:
        out = await self.wait_for("listening on http://")
        self.port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", out).group(1))
        await poll(lambda: _accepts(self.port), "the router to accept connections", timeout=DEADLINE_S)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: dict[str, Any], **kwargs: Any) -> asyncio.Future[HTTPResponse]:
        return self.client.fetch(self.url + OPENAI, method="POST", body=json.dumps(body), raise_error=False,
                                 headers={"Content-Type": "application/json"}, request_timeout=120, **kwargs)

    def open_feed(self) -> tuple[list[bytes], asyncio.Future[HTTPResponse]]:
        """The dashboard's event feed: what arrives goes into the list."""
        chunks: list[bytes] = []
        return chunks, self.client.fetch(self.url + "/dashboard/events", streaming_callback=chunks.append,
                                         request_timeout=120, raise_error=False)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self) -> int:
        """Once the router has exited, with no traceback in its log."""
        await poll(lambda: self.proc.poll() is not None, "the router to exit", timeout=DEADLINE_S)
        assert "Traceback" not in self.output(), self.output()
        return self.proc.returncode

    def kill(self) -> None:
        """The router and whatever of its group is left (workers whose parent was killed)."""
        self.client.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
