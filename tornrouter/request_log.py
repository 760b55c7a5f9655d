"""The JSONL request log: each entry built from the request's record
(``log_entry``), made a line (``entry_line``), and written by a thread so the
event loop never waits on disk.

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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .log_bodies import SHAPED_FIELDS
from .plugin_changes import logged
from .request_shape import request_shape

if TYPE_CHECKING:
    from .context import RequestRecord

log = logging.getLogger("tornrouter")

HAND_OFF_S = 0.05


def log_entry(record: RequestRecord, fields: EntryFields | None = None) -> dict[str, Any]:
    """The request log entry: the seed's fields, then what an operator needs more.
    ``fields`` are ``entry_fields(log.bodies)`` (default: ``ENTRY_FIELDS``, bodies in full).

    It is built whatever the request went through: a field that cannot be
    built (a plugin left a value of the wrong type where it is read) is null,
    and ``entry_error`` names it and why.  A request is never lost from the
    log for the sake of one field."""
    entry: dict[str, Any] = {}
    problems = []
    for name, build in ENTRY_FIELDS if fields is None else fields:
        try:
            entry[name] = build(record)
        except Exception as exc:  # noqa: BLE001 - the entry must be written; the problem goes in it
            entry[name] = None
            problems.append(f"{name}: {exc!r}")
    entry["entry_error"] = "; ".join(problems) or None
    return entry


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


EntryFields = tuple[tuple[str, Callable[["RequestRecord"], Any]], ...]

# The log entry's fields, in order, each built on its own (``log_entry``).
ENTRY_FIELDS: EntryFields = (
    ("ts_ms", lambda r: int(time.time() * 1000)),
    ("id", lambda r: r.id),
    ("endpoint", lambda r: r.endpoint),
    ("provider", lambda r: r.served_by),
    ("requested_model", lambda r: r.requested_model),
    ("sent_model", lambda r: r.target.model if r.target else (r.request.model if r.request else None)),
    ("duration_ms", lambda r: _ms(time.perf_counter() - r.started)),
    ("tags", lambda r: list(r.request.tags) if r.request else []),
    ("plugins", lambda r: r.active_plugins),
    ("system", lambda r: r.request.system_text() or None if r.request else None),
    ("messages", lambda r: [m.to_json() for m in r.request.messages] if r.request else []),
    ("response", lambda r: r.response.to_json() if r.response else None),
    ("error", lambda r: r.error),
    ("status", lambda r: r.status),
    ("stream", lambda r: bool(r.request and r.request.stream)),
    ("usage", lambda r: r.usage.to_json() if r.usage else None),
    ("ttft_ms", lambda r: _ms(r.first_byte_at - r.started) if r.first_byte_at else None),
    ("queue_ms", lambda r: _ms(r.queue_s) if r.queue_s else None),  # waiting for providers' slots (max_concurrent)
    ("routing", lambda r: {
        "tags": dict(r.request.tags) if r.request else {}, **(r.decision.to_json() if r.decision else {}),
    }),
    ("lossy", lambda r: r.lossy),
    ("cancelled", lambda r: r.cancelled),
    ("attempts", lambda r: r.attempts),
    ("key", lambda r: r.key_name),
    ("cost_usd", lambda r: r.cost_usd),
    ("continued", lambda r: r.continued),
    ("cache", lambda r: r.cache.to_json() if r.cache else None),
    ("overhead_ms", lambda r: round(r.overhead() * 1000, 2)),  # as x-tornrouter-overhead-ms says it
    ("token_count", lambda r: r.token_count),
    ("session", lambda r: r.session),
    ("affinity", lambda r: r.affinity.to_json() if r.affinity else None),
    ("instance", lambda r: r.instance),
    ("worker", lambda r: r.worker),
    ("dry_run", lambda r: r.dry_run),
    ("request", lambda r: request_shape(r.request) if r.request else None),  # what replay needs beyond the messages
    ("plugin_changes", lambda r: logged(r.plugin_changes) if r.plugin_changes else None),
    ("bodies", lambda r: "full"),
)


def entry_fields(bodies: str) -> EntryFields:
    """The fields of an entry under ``log.bodies``: ``ENTRY_FIELDS`` itself for
    ``full`` (nothing more to do per request), else the same with the content
    fields built as their shapes (``log_bodies``).  Decided once per config."""
    if bodies == "full":
        return ENTRY_FIELDS
    hashed = bodies == "hash"

    def shaped(name: str, build: Callable[[RequestRecord], Any]) -> Callable[[RequestRecord], Any]:
        if name == "bodies":
            return lambda r: bodies
        shape = SHAPED_FIELDS.get(name)
        return build if shape is None else lambda r: shape(r, hashed)

    return tuple((name, shaped(name, build)) for name, build in ENTRY_FIELDS)


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
