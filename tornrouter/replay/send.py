"""``tornrouter replay --send``: logged requests sent again to a running router,
at most ``rate`` a second and ``concurrency`` at once, with a progress bar on
stderr, for the status counts and latency percentiles.

Each request is written in its own API again (its codec's ``encode_request``)
from what the log holds: messages, system, the ``request`` fields; a tool is
sent by name with an open schema (the log keeps no schema).  Only entries
with whole bodies are sent; the others are counted and skipped.  A stream is
read to its end: its latency is the whole answer's.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..formats import codec_for
from .rebuild import Rebuilt

BAR_WIDTH = 30


@dataclass(slots=True)
class SendReport:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    skipped: int = 0  # entries without whole bodies

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        return {f"p{q}": _nearest_rank(ordered, q) for q in (50, 95, 99)}

    def to_json(self) -> dict[str, Any]:
        return {"sent": sum(self.statuses.values()), "skipped": self.skipped, "statuses": dict(self.statuses),
                "latency_ms": self.percentiles()}

    def text(self, url: str) -> str:
        p = self.percentiles()
        latency = "  ".join(f"{name} {value:.1f} ms" for name, value in p.items() if value is not None)
        lines = [f"sent {sum(self.statuses.values())} request(s) to {url}"
                 + (f"; skipped {self.skipped} without whole bodies in the log" if self.skipped else ""),
                 "status: " + ", ".join(f"{status} x{n}" for status, n in sorted(self.statuses.items())),
                 f"latency: {latency or '-'}"]
        return "\n".join(lines) + "\n"


def _nearest_rank(ordered: list[float], q: int) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 1)


class Progress:
    """A one-line progress bar, redrawn in place."""

    def __init__(self, total: int, out: IO[str] = sys.stderr) -> None:
        self.total, self.done, self.out = total, 0, out
        self.started = time.monotonic()
        self.draw()

    def step(self) -> None:
        self.done += 1
        self.draw()

    def draw(self) -> None:
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        self.out.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} "
                       f"{time.monotonic() - self.started:.1f} s")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()


def wire_body(rebuilt: Rebuilt) -> bytes:
    """The request in its own API, as its client sent it (as far as the log tells)."""
    request = rebuilt.request
    body, _ = codec_for(request.source).encode_request(request)
    return orjson.dumps(body)


async def send_all(items: list[Rebuilt], url: str, *, rate: float | None, concurrency: int, key: str | None,
                   skipped: int = 0, progress_out: IO[str] = sys.stderr, timeout_s: float = 600.0) -> SendReport:
    report = SendReport(skipped=skipped)
    client = AsyncHTTPClient(force_instance=True, max_clients=concurrency)
    gate = asyncio.Semaphore(concurrency)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    progress = Progress(len(items), progress_out)
    start = time.monotonic()

    async def one(index: int, rebuilt: Rebuilt) -> None:
        if rate:
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        async with gate:
            sent = time.perf_counter()
            response = await client.fetch(HTTPRequest(url.rstrip("/") + rebuilt.endpoint, method="POST", headers=headers,
                                                      body=wire_body(rebuilt), request_timeout=timeout_s), raise_error=False)
            report.latencies_ms.append((time.perf_counter() - sent) * 1000)
        report.statuses[str(response.code) if response.code != 599 else "no answer"] += 1
        progress.step()

    try:
        await asyncio.gather(*(one(i, rebuilt) for i, rebuilt in enumerate(items)))
    finally:
        progress.close()
        client.close()
    return report
