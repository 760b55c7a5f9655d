"""The pipeline: the one place that knows the stage order and its error policy.

::

    Start -> classifiers -> PreRouting -> router -> provider -> PostResponse -> End

``prepare`` runs everything up to the routing decision, ``finish`` the stages
after the answer; ``run`` is both around a non-streamed provider call.  A
streamed request calls ``prepare``, streams, then ``finish`` with the assembled
response, so both kinds of request share one definition of the stages.
"""

from __future__ import annotations

import logging
import re
from fnmatch import translate
from functools import lru_cache

from ..check import check_request, check_response
from ..classifiers import Classifiers
from ..context import RequestContext
from ..dispatch import Dispatcher
from ..errors import NoResponse, PluginFailed
from ..router import ModelRouter, split_forced
from .base import BasePlugin, Flow

log = logging.getLogger("tornrouter.plugins")

START, PRE_ROUTING, POST_RESPONSE, END = "on_start", "pre_request", "post_response", "on_end"


class Pipeline:
    def __init__(
        self,
        plugins: list[tuple[BasePlugin, tuple[str, ...]]],
        classifiers: Classifiers,
        router: ModelRouter,
        dispatcher: Dispatcher,
    ) -> None:
        self._plugins = [(plugin, re.compile("|".join(f"(?:{translate(g)})" for g in globs))) for plugin, globs in plugins]
        self.classifiers = classifiers
        self.router = router
        self.dispatcher = dispatcher
        # Which plugins apply depends only on the requested model: decide once per name.
        self.plugins_for = lru_cache(maxsize=4096)(self._plugins_for)

    def _plugins_for(self, model: str) -> tuple[BasePlugin, ...]:
        return tuple(plugin for plugin, pattern in self._plugins if pattern.match(model))

    async def run(self, ctx: RequestContext) -> None:
        """The whole pipeline for a non-streamed request; leaves the answer in
        ``ctx.response`` or raises a ``RouterError``."""
        plugins = await self.prepare(ctx)
        if ctx.decision is not None:
            ctx.response = await self.dispatcher.send(ctx)
        await self.finish(ctx, plugins)

    async def prepare(self, ctx: RequestContext) -> tuple[BasePlugin, ...]:
        """Start, classifiers, PreRouting, routing.  Afterwards either
        ``ctx.decision`` says where to send the request, or a plugin stopped the
        pipeline (``ctx.decision`` is None; ``ctx.response`` may hold its answer)."""
        request = ctx.request
        ctx.requested_model = request.model
        forced, model = split_forced(request.model)
        if forced is not None:
            request.forced_provider, request.model = forced, model
        plugins = self.plugins_for(ctx.requested_model)

        if await self._stage(plugins, START, ctx) is Flow.STOP:
            return plugins
        request.tags = await self.classifiers.classify(request)
        if await self._stage(plugins, PRE_ROUTING, ctx) is Flow.STOP or ctx.response is not None:
            return plugins
        ctx.decision = self.router.resolve(request.model, request.tags, request.forced_provider)
        return plugins

    async def finish(self, ctx: RequestContext, plugins: tuple[BasePlugin, ...]) -> None:
        """PostResponse, then End unless a PostResponse hook stopped; then
        ``NoResponse`` if there is still nothing to answer with."""
        if await self._stage(plugins, POST_RESPONSE, ctx) is not Flow.STOP:
            await self._stage(plugins, END, ctx)
        if ctx.response is None:
            raise NoResponse()

    async def _stage(self, plugins: tuple[BasePlugin, ...], hook: str, ctx: RequestContext) -> Flow:
        """Runs ``hook`` of each plugin until one returns ``STOP``.

        After each Start and PreRouting hook the request is checked (and a
        string written for ``system`` or a message's content made a text
        block), and after every hook the answer, if there is one: a type a
        plugin got wrong fails here, naming the plugin and the field, not
        later in an encoder, the accounting or the log.  An answer a late hook
        broke is dropped and fails the request, even though the hook's
        exception would not have: there is no answer left to send.  The checks run
        whatever the hook returned: the most natural plugin,
        ``ctx.request.system = "be brief"`` and no ``return``, says ``CONTINUE``.
        Each is a walk over the fields, about 3 µs plus 1 µs per message, and
        is skipped for plugins that do not override the hook."""
        early = hook in (START, PRE_ROUTING)
        for plugin in plugins:
            if getattr(type(plugin), hook) is getattr(BasePlugin, hook):
                continue  # not overridden: nothing runs, nothing to check
            ctx.settings = plugin.settings
            try:
                flow = await getattr(plugin, hook)(ctx)
                if early:
                    check_request(ctx.request)
            except Exception as exc:
                if early:
                    raise PluginFailed(plugin.id, exc) from exc
                log.warning("plugin '%s' %s hook failed: %s", plugin.id, hook, exc, exc_info=True)
                flow = Flow.CONTINUE
            if ctx.response is not None:
                try:
                    check_response(ctx.response)
                except ValueError as exc:
                    ctx.response = None  # what is left cannot be sent, priced or logged
                    raise PluginFailed(plugin.id, exc) from exc
            if flow is Flow.CONTINUE or flow is None:
                continue
            if plugin.id not in ctx.active_plugins:
                ctx.active_plugins.append(plugin.id)
            if flow is Flow.STOP:
                return Flow.STOP
        return Flow.CONTINUE
