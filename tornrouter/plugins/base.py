"""The plugin interface: ``BasePlugin`` and ``Flow``.

A plugin is a class with up to four async hooks, one per pipeline stage.  The
pipeline (``plugins.pipeline``) calls them in this order:

``on_start``       before classification; may rewrite the request, or put a
                   response in ``ctx.response`` and return ``Flow.STOP`` to skip
                   routing and the provider call.
``pre_request``    after the classifiers (``ctx.request.tags`` is filled), before
                   routing; same powers as ``on_start``.
``post_response``  after the provider answered (or a plugin did); may rewrite
                   ``ctx.response``.  ``Flow.STOP`` here skips the End stage.
``on_end``         last; for side effects (metrics, audit).  Its changes to the
                   response are still sent.

Each hook returns ``Flow.CONTINUE`` (nothing changed), ``Flow.MODIFIED``
(something changed: the plugin is listed among the request's active plugins)
or ``Flow.STOP`` (the rest of this stage is skipped).  An exception in
``on_start``/``pre_request`` fails the request with 500
``plugin '<id>' failed: <error>``; in ``post_response``/``on_end`` it is logged
as a warning and counts as ``CONTINUE``, since an answer exists by then.

For a streamed request, ``post_response`` and ``on_end`` run after the stream
has ended and see the assembled response: what they change is logged, not re-sent.

Around the requests, ``setup`` (before an instance's first request) and
``close`` (after its last) open and release what it holds for all of them:
see ``tornrouter.components``.
"""

from __future__ import annotations

import enum
import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from ..components import Component

if TYPE_CHECKING:
    from ..context import PluginContext

HOOKS = ("on_start", "pre_request", "post_response", "on_end")


class Flow(enum.Enum):
    CONTINUE = "continue"
    MODIFIED = "modified"
    STOP = "stop"


class BasePlugin(Component):
    """Subclass this, override the hooks you need, and name the class in the config.

    One instance is made per config entry and serves every request: keep
    per-request state on ``ctx`` (``ctx.state`` is a dict for that), not on
    ``self``; what it holds for all of them (a client, a file) is opened in
    ``setup`` and released in ``close``.  ``self.settings`` (also
    ``ctx.settings`` during a hook) is the entry's ``settings:`` mapping,
    validated by the class's ``Settings`` schema when it has one.  ``self.id``
    names the instance in the log and in errors: the class's ``id`` (by
    default its name in lower case), then ``<id>#2``, ``<id>#3``... for later
    entries with the same id.  A public method whose name looks like a hook
    but is not one (``pre_requests``), and a hook, ``setup`` or ``close`` that
    is not ``async def``, are refused when the class is defined.
    """

    id: str = ""
    Settings: ClassVar[Any] = None

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.id:
            cls.id = cls.__name__.lower()
        for name, value in vars(cls).items():
            if name.startswith(("on_", "pre_", "post_")) and name not in HOOKS:
                raise TypeError(f"{cls.__qualname__}.{name} is not a plugin hook (hooks: {', '.join(HOOKS)})")
            if name in HOOKS and not inspect.iscoroutinefunction(value):
                # The pipeline awaits every hook: a plain def would fail each request with a 500.
                raise TypeError(f"{cls.__qualname__}.{name} must be a coroutine function: write 'async def {name}(self, ctx)'")

    async def on_start(self, ctx: PluginContext) -> Flow:
        """Start stage: before the classifiers."""
        return Flow.CONTINUE

    async def pre_request(self, ctx: PluginContext) -> Flow:
        """PreRouting stage: tags are known, the provider is not chosen yet."""
        return Flow.CONTINUE

    async def post_response(self, ctx: PluginContext) -> Flow:
        """PostResponse stage: ``ctx.response`` holds the answer."""
        return Flow.CONTINUE

    async def on_end(self, ctx: PluginContext) -> Flow:
        """End stage: skipped when a PostResponse hook returned ``STOP``."""
        return Flow.CONTINUE
