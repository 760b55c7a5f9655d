"""Plugins and classifiers as a runtime holds them: ``Component``, their common
base (``setup`` and ``close``), and ``Components``, the configured ones of one
runtime.

Every ``Runtime`` builds its own components from its config, once: at start, at
each reload and in each ``--processes`` worker.  An instance therefore belongs
to one runtime in one process, and lives as long as it does::

    __init__(settings)   built with the runtime; no I/O (``--check`` builds them too)
    await setup()        once, before the runtime's first request
    hooks                its requests
    await close()        once, after the runtime's last request

``setup`` runs for the classifiers, then the plugins, each in config order,
one at a time; ``close`` in the reverse order.  A ``setup`` that raises, or
takes longer than ``SETUP_TIMEOUT_S``, closes those set up before it and
refuses the start or the reload with one line naming the entry.  A ``close``
that raises, or takes longer than ``CLOSE_TIMEOUT_S``, is logged and the next
one is closed: a stop or a reload goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .classifiers import BaseClassifier
    from .config import ComponentEntry, Config
    from .plugins import BasePlugin

log = logging.getLogger("tornrouter")

# A setup that hangs (a host that drops packets) must not hold a start or a
# reload forever, nor a close a stop past supervisord's stopwaitsecs.
SETUP_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
LIFECYCLE = ("setup", "close")


class Component:
    """What plugins and classifiers share: ``setup`` and ``close``, no-ops to
    override for what an instance holds open for all its requests (a client,
    a pool, a file).  One that is not ``async def`` is refused when the class
    is defined."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in LIFECYCLE:
            method = vars(cls).get(name)
            if method is not None and not inspect.iscoroutinefunction(method):
                raise TypeError(f"{cls.__qualname__}.{name} must be a coroutine function: write 'async def {name}(self)'")

    async def setup(self) -> None:
        """Open what the instance holds for every request.  Awaited once, before
        its first request: at start, at a reload (the new config's instances,
        before they take any request) and in each ``--processes`` worker (after
        the fork, on the worker's own event loop).  ``self.settings`` is set.

        An exception, or taking longer than ``SETUP_TIMEOUT_S``, refuses the
        start (exit status 2) or the reload (the old config goes on serving).
        ``close`` is then not called for this instance: undo here what a
        failing ``setup`` opened."""

    async def close(self) -> None:
        """Release what ``setup`` opened.  Awaited once, after the instance's
        last request: at stop, once the requests in flight are done or cut
        off; after a reload, once the last request that started before it is
        done.  Not called if ``setup`` raised.  An exception is logged with its
        traceback and never stops the router."""


class Components:
    """The classifiers and plugins of one runtime, built from ``config`` (a
    constructor that raises is a ``ConfigError`` naming its entry).  Two
    plugins with one id (two entries of a class) get distinct ones: the first
    keeps ``redact``, the next are ``redact#2``, ``redact#3``..."""

    def __init__(self, config: Config) -> None:
        problems: list[str] = []
        self.classifiers: list[BaseClassifier] = [
            _make(entry, f"classifiers.{i}", problems) for i, entry in enumerate(config.classifiers)
        ]
        self.plugins: list[tuple[BasePlugin, tuple[str, ...]]] = [
            (_make(entry, f"plugins.{i}", problems), entry.models) for i, entry in enumerate(config.plugins)
        ]
        if problems:
            raise ConfigError(problems)
        _distinct_ids([plugin for plugin, _ in self.plugins])
        # (how the messages name it, the instance), in the order of setup.
        self._members: list[tuple[str, Component]] = [
            *((f"classifiers.{i}: classifier '{c.name}'", c) for i, c in enumerate(self.classifiers)),
            *((f"plugins.{i}: plugin '{p.id}'", p) for i, (p, _) in enumerate(self.plugins)),
        ]
        self._ready: list[tuple[str, Component]] = []  # set up, not yet closed

    async def setup(self) -> None:
        """Set up every member; raises ``ConfigError`` with one line naming the
        one that failed, after closing those set up before it.  Cancelled (a
        stop during a reload), it closes them too."""
        try:
            for label, member in self._members:
                await _setup(label, member)
                self._ready.append((label, member))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every member set up, last first; each once, whoever calls."""
        ready, self._ready = self._ready, []
        for label, member in reversed(ready):
            try:
                error = await asyncio.wait_for(_caught(member, "close"), CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.error("%s: close did not finish within %g s; going on", label, CLOSE_TIMEOUT_S)
                continue
            if error is not None:
                log.error("%s: close failed; going on", label, exc_info=error)


def _make(entry: ComponentEntry, path: str, problems: list[str]) -> Any:
    try:
        return entry.cls(entry.settings)
    except Exception as exc:
        problems.append(f"{path}: {entry.use}: {exc}")
        return None


def _distinct_ids(plugins: list[BasePlugin]) -> None:
    seen: Counter[str] = Counter()
    for plugin in plugins:
        seen[plugin.id] += 1
        if seen[plugin.id] > 1:
            plugin.id = f"{plugin.id}#{seen[plugin.id]}"


async def _setup(label: str, member: Component) -> None:
    try:
        error = await asyncio.wait_for(_caught(member, "setup"), SETUP_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise ConfigError([f"{label}: setup did not finish within {SETUP_TIMEOUT_S:g} s"]) from None
    if error is not None:
        raise ConfigError([f"{label}: setup failed: {type(error).__name__}: {error}"]) from error


async def _caught(member: Component, hook: str) -> Exception | None:
    """Runs ``member.<hook>()`` and returns its exception: the only one
    ``wait_for`` raises around it is then its own timeout (the ``TimeoutError``
    of a socket in the hook is the same class since Python 3.11)."""
    try:
        await getattr(member, hook)()
    except Exception as exc:
        return exc
    return None
