"""The JSONL request log, written by a thread so the event loop never waits on disk.

The loop only serializes the entry and adds the line to a batch; every
``HAND_OFF_S`` the batch goes to the writer thread as one string, which it
writes in one call.  Handing over every line at once would wake the writer (and
trade the GIL with it) once per request: measured, that cost a loaded router
about a tenth of its throughput.  Each line is written whole, so a reader never
sees half an entry; ``flush`` and ``close`` write everything so far.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from typing import Any

import orjson

log = logging.getLogger("tornrouter")

HAND_OFF_S = 0.05


def entry_line(entry: dict[str, Any]) -> str:
    """A log entry as one JSON line.  A value JSON cannot hold (a plugin put a
    dict with integer keys in the response, say) is null, and the entry's
    ``entry_error`` says so: the line is written either way."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except TypeError:
        problems = [entry.get("entry_error")] if entry.get("entry_error") else []
        safe = {}
        for name, value in entry.items():
            try:
                orjson.dumps(value, default=str)
                safe[name] = value
            except TypeError as exc:
                safe[name] = None
                problems.append(f"{name}: {exc!r}")
        safe["entry_error"] = "; ".join(problems)
        return orjson.dumps(safe, default=str).decode()


class RequestLog:
    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        self._batch: list[str] = []
        self._hand_off_scheduled = False
        # Items: lines to write, an Event to set once all before it is written, or None to stop.
        self._queue: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_forever, name="tornrouter-request-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Add one entry (a JSON document without newline); returns at once.
        Call from the event loop's thread."""
        self._batch.append(line)
        if self._hand_off_scheduled:
            return
        try:
            asyncio.get_running_loop().call_later(HAND_OFF_S, self._hand_off)
        except RuntimeError:  # no loop (a last entry written at shutdown): hand over now
            self._hand_off()
            return
        self._hand_off_scheduled = True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every line written so far is on disk (for tests and shutdown)."""
        self._hand_off()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write everything so far, then close the file."""
        self._hand_off()
        self._queue.put(None)
        self._thread.join()
        self._file.close()

    def _hand_off(self) -> None:
        self._hand_off_scheduled = False
        if self._batch:
            lines, self._batch = self._batch, []
            self._queue.put("\n".join(lines) + "\n")

    def _write_forever(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._file.write("".join(item for item in items if isinstance(item, str)))
                self._file.flush()
            except OSError as exc:  # a full disk must not stop the writer (nor flush() waiting on it)
                log.error("request log %s: lines lost: %s", self.path, exc)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if None in items:
                return
