"""The JSONL request log, written by a thread so the event loop never waits on disk.

The loop only serializes the entry and puts the line on a queue; the writer
thread drains whatever has accumulated and writes it in one call, so a burst of
requests costs one ``write`` and one ``flush``.  Each line is written whole, so
a reader never sees half an entry, and ``close`` writes everything queued.
"""

from __future__ import annotations

import os
import queue
import threading


class RequestLog:
    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        # Items: a line to write, an Event to set once all before it is written, or None to stop.
        self._queue: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_forever, name="tornrouter-request-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one entry (a JSON document without newline); returns at once."""
        self._queue.put(line)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every line queued so far is on disk (for tests and shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._queue.put(None)
        self._thread.join()
        self._file.close()

    def _write_forever(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._file.write("".join(f"{item}\n" for item in items if isinstance(item, str)))
            self._file.flush()
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if None in items:
                return
