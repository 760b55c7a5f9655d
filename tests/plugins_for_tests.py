"""Plugins that misbehave on purpose, to pin down the pipeline's semantics."""

from __future__ import annotations

from tornrouter.canonical import ChatResponse
from tornrouter.classifiers import BaseClassifier
from tornrouter.plugins import BasePlugin, Flow


class Recorder(BasePlugin):
    """Appends '<id>:<hook>' to ctx.state['calls'] for every hook, then returns
    the Flow named in settings[hook] (default CONTINUE)."""

    def _record(self, ctx, hook: str) -> Flow:
        ctx.state.setdefault("calls", []).append(f"{self.settings.get('name', self.id)}:{hook}")
        calls = ctx.response.extra.setdefault("calls", []) if ctx.response is not None else None
        if calls is not None:
            calls[:] = ctx.state["calls"]
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


class ShortCircuit(BasePlugin):
    async def on_start(self, ctx):
        ctx.response = ChatResponse.from_text("short-circuited", model=ctx.request.model)
        return Flow.STOP


class Corrupt(BasePlugin):
    """Leaves the answer in a shape the router cannot read, in the hook named by
    settings['hook']: settings['what'] is ``response`` (not a ChatResponse at
    all), ``usage`` (None) or ``unserialisable`` (text JSON cannot hold)."""

    async def _corrupt(self, ctx, hook: str) -> Flow:
        if self.settings["hook"] != hook:
            return Flow.CONTINUE
        what = self.settings["what"]
        if what == "response":
            ctx.response = "not a response"
        elif what == "usage":
            ctx.response.usage = None
        else:
            ctx.response.content[0].text = {1: "an integer key"}
        return Flow.MODIFIED

    async def post_response(self, ctx):
        return await self._corrupt(ctx, "post_response")

    async def on_end(self, ctx):
        return await self._corrupt(ctx, "on_end")


class FailingClassifier(BaseClassifier):
    async def classify(self, request):
        raise RuntimeError("cannot tell")
