"""Plugins that misbehave on purpose, to pin down the pipeline's semantics."""

from __future__ import annotations

import asyncio
import itertools
import os

from tornrouter.canonical import ChatResponse, ToolCall
from tornrouter.classifiers import BaseClassifier
from tornrouter.plugins import BasePlugin, Flow


class Recorder(BasePlugin):
    """Records '<id>:<hook>' for every hook it runs, then returns the Flow named
    in settings[hook] (default CONTINUE).  Its id is settings['name'].

    The calls go to the response's ``extra`` once there is a response, so that
    an OpenAI client of an OpenAI upstream reads them as the body's ``calls``."""

    def __init__(self, settings):
        super().__init__(settings)
        self.id = settings["name"]

    def _record(self, ctx, hook: str) -> Flow:
        calls = ctx.state.setdefault("calls", [])
        calls.append(f"{self.id}:{hook}")
        if ctx.response is not None:
            ctx.response.extra["calls"] = list(calls)
        return Flow[self.settings.get(hook, "CONTINUE")]

    async def on_start(self, ctx):
        return self._record(ctx, "on_start")

    async def pre_request(self, ctx):
        return self._record(ctx, "pre_request")

    async def post_response(self, ctx):
        return self._record(ctx, "post_response")

    async def on_end(self, ctx):
        return self._record(ctx, "on_end")


class Boom(BasePlugin):
    """Raises in the hook named by settings['hook']."""

    async def _maybe_raise(self, hook: str) -> Flow:
        if self.settings.get("hook") == hook:
            raise RuntimeError(f"boom in {hook}")
        return Flow.CONTINUE

    async def on_start(self, ctx):
        return await self._maybe_raise("on_start")

    async def pre_request(self, ctx):
        return await self._maybe_raise("pre_request")

    async def post_response(self, ctx):
        return await self._maybe_raise("post_response")

    async def on_end(self, ctx):
        return await self._maybe_raise("on_end")


class StopEmpty(BasePlugin):
    """Stops at PreRouting without giving a response."""

    async def pre_request(self, ctx):
        return Flow.STOP


class Rewrite(BasePlugin):
    """Rewrites the answer's text after the provider replied."""

    async def post_response(self, ctx):
        ctx.response.content[0].text = self.settings["text"]
        return Flow.MODIFIED


class Stamp(BasePlugin):
    """Adds ``stamp`` to the request's ``extra``, in place: the dict the request
    came with is the one changed."""

    async def pre_request(self, ctx):
        ctx.request.extra["stamp"] = self.settings.get("value", "yes")
        return Flow.MODIFIED


class Huge(BasePlugin):
    """Puts in the request's ``extra`` an integer JSON (as orjson writes it) cannot hold."""

    async def pre_request(self, ctx):
        ctx.request.extra["n"] = 2**70
        return Flow.MODIFIED


class ShortCircuit(BasePlugin):
    async def on_start(self, ctx):
        ctx.response = ChatResponse.from_text("short-circuited", model=ctx.request.model)
        return Flow.STOP


RAW_ARGUMENTS = '{"location": "Par'


class CallsTool(BasePlugin):
    """Answers with a tool call whose arguments are not a JSON object, kept raw
    as the OpenAI decoder keeps an upstream's."""

    async def on_start(self, ctx):
        call = ToolCall("call_1", "get_weather", raw_arguments=RAW_ARGUMENTS)
        ctx.response = ChatResponse("msg_1", ctx.request.model, [call], stop_reason="tool_use")
        return Flow.STOP


# What ``Sloppy`` does to the request: the natural forms the pipeline accepts,
# and types it must refuse.
CHANGES = {
    "system": lambda request: setattr(request, "system", "be brief"),
    "content": lambda request: setattr(request.messages[-1], "content", "say it plainly"),
    "append_int": lambda request: request.messages.append(42),
    "max_tokens": lambda request: setattr(request, "max_tokens", "lots"),
}


class Sloppy(BasePlugin):
    """Applies ``CHANGES[settings['change']]`` to the request in the hook named by
    settings['hook'] (default ``pre_request``) and returns nothing, as a plugin
    written in a hurry would (the pipeline takes None for CONTINUE)."""

    id = "brief"

    def _change(self, ctx, hook: str) -> None:
        if self.settings.get("hook", "pre_request") == hook:
            CHANGES[self.settings["change"]](ctx.request)

    async def on_start(self, ctx):
        return self._change(ctx, "on_start")

    async def pre_request(self, ctx):
        return self._change(ctx, "pre_request")


class Corrupt(BasePlugin):
    """Leaves the answer or the request in a shape the router cannot read, in
    the hook named by settings['hook']: settings['what'] is ``response`` (not a
    ChatResponse at all), ``usage`` (None), ``unserialisable`` (text JSON
    cannot hold), ``messages`` (an int among the request's messages) or
    ``tags`` (a tag JSON cannot hold)."""

    async def _corrupt(self, ctx, hook: str) -> Flow:
        if self.settings["hook"] != hook:
            return Flow.CONTINUE
        what = self.settings["what"]
        if what == "response":
            ctx.response = "not a response"
        elif what == "usage":
            ctx.response.usage = None
        elif what == "unserialisable":
            ctx.response.content[0].text = {1: "an integer key"}
        elif what == "messages":
            ctx.request.messages.append(42)
        else:
            ctx.request.tags = {1: "an integer key"}
        return Flow.MODIFIED

    async def on_start(self, ctx):
        return await self._corrupt(ctx, "on_start")

    async def post_response(self, ctx):
        return await self._corrupt(ctx, "post_response")

    async def on_end(self, ctx):
        return await self._corrupt(ctx, "on_end")


class FailingClassifier(BaseClassifier):
    async def classify(self, request):
        raise RuntimeError("cannot tell")


_SERIAL = itertools.count(1)


class Journaling:
    """Appends ``<event> <name> <serial> <pid>`` to the file settings['journal']
    for ``setup``, ``close`` and the events its subclass adds (``serial`` tells
    the instances of one process apart).  settings['fail'] names an event that
    raises instead, settings['hang'] one that never ends."""

    def __init__(self, settings):
        super().__init__(settings)
        self.serial = next(_SERIAL)

    async def setup(self):
        await self._event("setup")

    async def close(self):
        await self._event("close")

    async def _event(self, event: str) -> None:
        if self.settings.get("hang") == event:
            await asyncio.Event().wait()
        if self.settings.get("fail") == event:
            raise RuntimeError(f"no {event} today")
        name = self.id if isinstance(self, BasePlugin) else self.name
        with open(self.settings["journal"], "a", encoding="utf-8") as f:
            f.write(f"{event} {name} {self.serial} {os.getpid()}\n")


class Journal(Journaling, BasePlugin):
    """Journals ``setup``, ``close``, and ``start``/``end`` (its Start and End hooks)."""

    async def on_start(self, ctx):
        await self._event("start")
        return Flow.CONTINUE

    async def on_end(self, ctx):
        await self._event("end")
        return Flow.CONTINUE


class JournalClassifier(Journaling, BaseClassifier):
    """Journals ``setup``, ``close`` and ``classify``; adds no tag."""

    async def classify(self, request):
        await self._event("classify")
        return ()
