"""``--processes N``: N worker processes serving one port.

The parent binds the listening sockets, then forks the workers, which inherit
them and accept from the same queue (the prefork model of Tornado's
``fork_processes``).  Each worker then builds its own event loop and
``Runtime``, so nothing that holds sockets or threads (the curl client, the
request log's writer) is shared across a fork.  The parent serves nothing and
builds none of it; it only watches its workers:

- ``SIGTERM``/``SIGINT`` are passed on to the workers as ``SIGTERM`` (each
  drains its own requests); the parent closes its copy of the listening sockets
  at once, so the port refuses connections as soon as the workers have stopped
  accepting, and exits 0 when every worker has exited 0.
- ``SIGHUP`` is passed on: each worker reloads the config itself.
- A worker that dies otherwise is started again under the same id, unless it
  died within ``MIN_UPTIME_S`` of its start (a worker that cannot start would
  only die again): then the others are stopped and the parent exits 1.  A
  worker that exits ``REFUSED`` (a plugin's or a classifier's ``setup`` failed,
  however long it took) is not started again either: the others are stopped
  and the parent exits ``REFUSED`` too, as a single process would.

This is ``fork_processes`` with the one thing it lacks: the parent knows its
children, so it can pass signals on (and it does not restart a worker that was
asked to stop).  Signals are blocked around each fork so none is lost between
a fork and the bookkeeping, and a worker keeps them blocked until its event
loop handles them (``Service.install_signal_handlers``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from typing import Callable

from .lifecycle import SIGNALS
from .metrics import process_exited

log = logging.getLogger("tornrouter")
MIN_UPTIME_S = 1.0
REFUSED = 2  # the exit status of a refused start: a config, or a plugin that could not be set up


def run_workers(count: int, sockets: list[socket.socket], work: Callable[[int], int]) -> int:
    """Run ``work(worker_id)`` in ``count`` forked processes (ids 0 to count-1)
    and watch them; returns the parent's exit status."""
    return _Parent(sockets, work).run(count)


class _Parent:
    """The parent's bookkeeping: its live children, whether it is stopping, and
    the exit status it will return.  Its signal handler and its wait loop both
    change it, on the one thread."""

    def __init__(self, sockets: list[socket.socket], work: Callable[[int], int]) -> None:
        self.sockets = sockets
        self.work = work
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker id, start time)
        self.stopping = False
        self.status = 0

    def run(self, count: int) -> int:
        for signum in SIGNALS:
            signal.signal(signum, self.on_signal)
        for worker in range(count):
            self.spawn(worker)
        log.info("%d workers started", count)
        while self.children:
            pid, wait_status = os.waitpid(-1, 0)
            if pid in self.children:
                self.reap(pid, os.waitstatus_to_exitcode(wait_status))
        return self.status

    def on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self.send(signal.SIGHUP)
            return
        if not self.stopping:
            log.info("stopping %d worker(s)", len(self.children))
        self.stopping = True
        for sock in self.sockets:
            sock.close()
        self.send(signal.SIGTERM)

    def send(self, sig: int) -> None:
        for pid in self.children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:  # exited, not yet reaped
                pass

    def spawn(self, worker: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        pid = os.fork()
        if pid == 0:
            for signum in SIGNALS:  # the worker's loop installs its own (signals stay blocked until then)
                signal.signal(signum, signal.SIG_DFL)
            os._exit(_run_child(self.work, worker))
        self.children[pid] = (worker, time.monotonic())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def reap(self, pid: int, code: int) -> None:
        """Child ``pid`` exited with ``code`` (negative: killed by that signal):
        log it, and start it again, stop the others, or let it be."""
        worker, started = self.children.pop(pid)
        process_exited(pid)  # its live metrics gauges stop counting (multiprocess mode)
        what = f"exit status {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        if self.stopping:
            log.info("worker %d (pid %d) stopped (%s)", worker, pid, what)
            if code != 0:
                self.status = self.status or 1
        elif code == 0:
            log.info("worker %d (pid %d) exited (%s); not restarted", worker, pid, what)
        elif code == REFUSED or time.monotonic() - started < MIN_UPTIME_S:
            log.error("worker %d (pid %d) failed at start (%s): stopping", worker, pid, what)
            self.status = REFUSED if code == REFUSED else 1
            self.on_signal(signal.SIGTERM, None)
        else:
            log.warning("worker %d (pid %d) died (%s): starting it again", worker, pid, what)
            self.spawn(worker)


def _run_child(work: Callable[[int], int], worker: int) -> int:
    """The worker's life: ``work``'s status, 1 if it raised; stdio flushed
    (``os._exit`` skips the interpreter's own cleanup, which belongs to the parent)."""
    status = 1
    try:
        status = work(worker)
    except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
        log.exception("worker %d failed", worker)
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    return status
