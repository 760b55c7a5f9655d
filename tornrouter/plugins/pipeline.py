"""The pipeline: the one place that knows the stage order and its error policy.

::

    Start -> classifiers -> PreRouting -> router -> provider -> PostResponse -> End

``prepare`` runs everything up to the routing decision, ``finish`` the stages
after the answer.  A non-streamed request is ``run``: both around the provider
call.  A streamed one is ``open_stream`` (``prepare``, then the stream to send)
and, once it is sent, ``finish_stream`` (``finish`` over the assembled answer),
so both kinds of request share one definition of the stages, and the late
stages run once whichever way the answer came.

The response cache (``tornrouter/cache``) stands in for the provider call: once
routed, a request is looked up; a hit skips the call (a stream replays the
answer), a miss makes it and stores the answer before PostResponse sees it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from fnmatch import translate
from functools import lru_cache

from ..check import check_request, check_response
from ..classifiers import Classifiers
from ..accumulate import replay
from ..cache import ResponseCache
from ..canonical import ChatResponse
from ..context import RequestRecord
from ..continuation import ContinuingStream
from ..dispatch import Dispatcher
from ..errors import NoResponse, PluginFailed, RouterError
from ..plugin_changes import changes_between, snapshot
from ..providers.streaming import EventStream, ReplayStream
from ..router import ModelRouter, split_forced
from ..sessions import Sessions
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
        cache: ResponseCache | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self._plugins = [(plugin, re.compile("|".join(f"(?:{translate(g)})" for g in globs))) for plugin, globs in plugins]
        self.classifiers = classifiers
        self.router = router
        self.dispatcher = dispatcher
        self.cache = cache
        self.sessions = sessions  # session-sticky routing (the runtime's, over its state backend)
        # Which plugins apply depends only on the requested model: decide once per name.
        self.plugins_for = lru_cache(maxsize=4096)(self._plugins_for)

    def _plugins_for(self, model: str) -> tuple[BasePlugin, ...]:
        return tuple(plugin for plugin, pattern in self._plugins if pattern.match(model))

    async def run(self, record: RequestRecord) -> None:
        """The whole pipeline for a non-streamed request; leaves the answer in
        ``record.response`` or raises a ``RouterError``."""
        await self.prepare(record)
        if record.decision is not None:
            record.ctx.response = await self._answer(record)
        await self.finish(record)

    async def _answer(self, record: RequestRecord) -> ChatResponse:
        """The cached answer, else the upstream's (stored for the next identical
        request; its target pinned to the request's session)."""
        if self.cache is None:
            response = await self.dispatcher.send(record)
        else:
            response = await self.cache.lookup(record)
            if response is not None:
                return response
            try:
                response = await self.dispatcher.send(record)
            finally:
                self.cache.store(record, response)  # lands its flight, with the answer or without
        await self._served(record)
        return response

    async def open_stream(self, record: RequestRecord) -> EventStream | None:
        """The pipeline up to the stream the client is to get: a plugin's answer
        replayed, or an upstream's past its commit point (continued on a later
        target if it fails, where the route says so).  Raises a ``RouterError``
        while nothing is sent; None if the client left before it opened."""
        await self.prepare(record)
        if record.decision is None:
            if record.response is None:
                await self.finish(record)  # NoResponse, unless a late hook answers
            return ReplayStream(replay(record.response))
        if record.cancelled:  # the client left during the plugins: open nothing
            return None
        # A task, so that a client who leaves meanwhile can cancel it (``RequestRecord.cancel``).
        record.opening = asyncio.ensure_future(self._open(record))
        try:
            stream = await record.opening
        except asyncio.CancelledError:
            if not record.cancelled:
                raise
            return None
        finally:
            record.opening = None
        return stream

    async def _open(self, record: RequestRecord) -> EventStream:
        """The cached answer replayed, else the upstream's stream past its commit
        point (continued on a later target if it fails, where the route says so)."""
        if self.cache is not None:
            response = await self.cache.lookup(record)  # may wait for an identical request's answer
            if response is not None:
                return ReplayStream(replay(response), decoded_from=response.source)
        try:
            stream = await self.dispatcher.open_stream(record)
        except BaseException:
            if self.cache is not None:
                self.cache.finished(record)  # nothing to store: its waiters go upstream
            raise
        if self.cache is not None:
            self.cache.committed(record)
        await self._served(record)
        if record.decision.continue_on_failure:
            stream = ContinuingStream(stream, record, self.dispatcher)
        return stream

    async def finish_stream(self, record: RequestRecord, response: ChatResponse | None) -> None:
        """After a stream: PostResponse and End over the answer it assembled,
        unless they have run (on a plugin's answer).  The stream is sent by
        then, so what fails here is the log's to tell, not the client's.  A
        stream that ended whole is stored first, as PostResponse has not yet
        touched its answer."""
        if self.cache is not None:
            self.cache.store_stream(record, response)
        if record.late_stages_ran or response is None:
            return
        record.ctx.response = response
        try:
            await self.finish(record)
        except RouterError as exc:
            log.warning("%s %s: after the stream: %s", record.endpoint, record.id, exc.message)
            record.error = exc.message

    async def prepare(self, record: RequestRecord) -> None:
        """Start, classifiers, PreRouting, routing.  Afterwards either
        ``record.decision`` says where to send the request, or a plugin stopped the
        pipeline (``record.decision`` is None; the response may hold its answer)."""
        request = record.request
        record.requested_model = request.model
        forced, model = split_forced(request.model)
        if forced is not None:
            request.forced_provider, request.model = forced, model
        record.plugins = self.plugins_for(record.requested_model)

        if await self._stage(record, START) is Flow.STOP:
            return
        request = record.request  # a Start hook may have replaced it
        request.tags = await self.classifiers.classify(request)
        if await self._stage(record, PRE_ROUTING) is Flow.STOP or record.response is not None:
            return
        request = record.request
        record.decision = self.router.resolve(request.model, request.tags, request.forced_provider, record.id)
        if self.sessions is not None:
            await self.sessions.order(record)  # a session's pinned target first

    async def _served(self, record: RequestRecord) -> None:
        if self.sessions is not None:
            await self.sessions.served(record)

    async def finish(self, record: RequestRecord) -> None:
        """PostResponse, then End unless a PostResponse hook stopped; then
        ``NoResponse`` if there is still nothing to answer with.  The usage is
        taken before: what the answer cost is not a plugin's to change."""
        record.late_stages_ran = True
        if record.usage is None and record.response is not None:
            record.usage = record.response.usage
        if await self._stage(record, POST_RESPONSE) is not Flow.STOP:
            await self._stage(record, END)
        if record.response is None:
            raise NoResponse()

    async def _stage(self, record: RequestRecord, hook: str) -> Flow:
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
        is skipped for plugins that do not override the hook.

        Around each hook but End, the request (or the answer) is snapshotted
        and what the hook changed is kept in ``record.plugin_changes``
        (``plugin_changes.py``): again only for plugins that override it."""
        early = hook in (START, PRE_ROUTING)
        watched = hook != END
        ctx = record.ctx
        before = None
        for plugin in record.plugins:
            if getattr(type(plugin), hook) is getattr(BasePlugin, hook):
                continue  # not overridden: nothing runs, nothing to check
            if watched and before is None:
                before = snapshot(ctx, early)
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
            if watched:
                after = snapshot(ctx, early)
                changes = changes_between(before, after)
                if changes:
                    record.plugin_changes.append({"plugin": plugin.id, "hook": hook, "changes": changes})
                before = after
            if flow is Flow.CONTINUE or flow is None:
                continue
            if plugin.id not in record.active_plugins:
                record.active_plugins.append(plugin.id)
            if flow is Flow.STOP:
                return Flow.STOP
        return Flow.CONTINUE
