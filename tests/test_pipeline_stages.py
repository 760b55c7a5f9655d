"""The ``Pipeline`` itself, without a server: what each outcome of a hook does
at each stage, in one table.

::

    Start -> classifiers -> PreRouting -> router -> provider -> PostResponse -> End

A ``Scripted`` plugin does one thing at one stage: ``CONTINUE``, ``MODIFIED``
(it changes the request before routing, the answer after), ``STOP`` (with an
answer of its own where there is none yet), ``raise``, or ``break`` (it leaves an
answer the router cannot send).  A ``Witness`` plugin after it, and a
``Witnessing`` classifier, note which stages they saw; the routing decision and
the provider's attempt say whether routing and the provider ran.  Everything is
real: plugins, classifiers, the ``ModelRouter`` over an echo provider, the
``Dispatcher``; ``Pipeline.run`` drives them.

What the table specifies:

- ``STOP`` ends its stage (the witness does not see it); at Start or PreRouting,
  with an answer, it skips routing and the provider, while PostResponse and End
  still run; at PostResponse it skips End.
- ``MODIFIED`` and ``STOP`` list the plugin among the request's ``active_plugins``.
- An exception at Start or PreRouting fails the request: ``PluginFailed``, 500,
  ``plugin '<id>' failed: <error>``.  In PostResponse or End it is logged as a
  warning and counts as ``CONTINUE``.
- A hook that leaves a broken answer fails the request at any stage, and the
  answer is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.configs import echo_only
from tornrouter.canonical import ChatRequest, ChatResponse, Message, Text
from tornrouter.classifiers import BaseClassifier, Classifiers
from tornrouter.config import parse_config
from tornrouter.context import RequestRecord
from tornrouter.dispatch import Dispatcher
from tornrouter.errors import PluginFailed
from tornrouter.plugins import BasePlugin, Flow, PluginContext
from tornrouter.plugins.pipeline import Pipeline
from tornrouter.providers import make_provider
from tornrouter.router import ModelRouter

HOOKS = {"Start": "on_start", "PreRouting": "pre_request", "PostResponse": "post_response", "End": "on_end"}
ALL = ("Start", "classifiers", "PreRouting", "router", "provider", "PostResponse", "End")
ECHOED = "echo: hello"
OWN_ANSWER = "the plugin's own answer"


class Scripted(BasePlugin):
    """``settings``: at ``stage`` (a key of ``HOOKS``), do ``outcome``; elsewhere, nothing."""

    async def act(self, ctx: PluginContext, stage: str) -> Flow:
        if stage != self.settings["stage"]:
            return Flow.CONTINUE
        outcome = self.settings["outcome"]
        early = stage in ("Start", "PreRouting")
        if outcome == "raise":
            raise RuntimeError(f"boom at {stage}")
        if outcome == "break":
            if ctx.response is None:
                ctx.response = ChatResponse.from_text(OWN_ANSWER, model="scripted")
            ctx.response.usage = None  # not a Usage: nothing could price, log or encode it
            return Flow.CONTINUE
        if outcome == "MODIFIED":
            if early:
                ctx.request.messages[-1].content[-1].text += " (modified)"
            else:
                ctx.response.content[-1].text += " (modified)"
        if outcome == "STOP" and ctx.response is None:
            ctx.response = ChatResponse.from_text(OWN_ANSWER, model="scripted")
        return Flow[outcome]

    async def on_start(self, ctx: PluginContext) -> Flow:
        return await self.act(ctx, "Start")

    async def pre_request(self, ctx: PluginContext) -> Flow:
        return await self.act(ctx, "PreRouting")

    async def post_response(self, ctx: PluginContext) -> Flow:
        return await self.act(ctx, "PostResponse")

    async def on_end(self, ctx: PluginContext) -> Flow:
        return await self.act(ctx, "End")


class Witness(BasePlugin):
    """Runs after ``Scripted`` and notes, in ``ctx.state["seen"]``, each stage it saw."""

    def saw(self, ctx: PluginContext, stage: str) -> Flow:
        ctx.state.setdefault("seen", []).append(stage)
        return Flow.CONTINUE

    async def on_start(self, ctx: PluginContext) -> Flow:
        return self.saw(ctx, "Start")

    async def pre_request(self, ctx: PluginContext) -> Flow:
        return self.saw(ctx, "PreRouting")

    async def post_response(self, ctx: PluginContext) -> Flow:
        return self.saw(ctx, "PostResponse")

    async def on_end(self, ctx: PluginContext) -> Flow:
        return self.saw(ctx, "End")


class Witnessing(BaseClassifier):
    """Tags every request ``witnessed``: the tag says the classifiers ran."""

    default_tag = "witnessed"

    async def classify(self, request: ChatRequest) -> Iterable[str]:
        return (self.tag,)


@pytest.fixture
def pipeline(io_loop):
    """``pipeline(stage, outcome)`` -> a ``Pipeline`` with ``Scripted`` then
    ``Witness``, the ``Witnessing`` classifier, and every model routed to echo."""
    config = parse_config(echo_only(), environ={})
    http = AsyncHTTPClient(force_instance=True)
    providers = {name: make_provider(p, http) for name, p in config.providers.items()}

    def build(stage: str, outcome: str) -> Pipeline:
        plugins = [(Scripted({"stage": stage, "outcome": outcome}), ("*",)), (Witness({}), ("*",))]
        return Pipeline(plugins, Classifiers([Witnessing({})]), ModelRouter(config.router, providers), Dispatcher())

    yield build
    http.close()


def context() -> RequestRecord:
    record = RequestRecord("req-1", "/v1/chat/completions", http=None)
    record.ctx.request = ChatRequest(model="any-model", source="openai", messages=[Message("user", [Text("hello")])])
    return record


def stages_that_ran(record: RequestRecord) -> tuple[str, ...]:
    """Which of ``ALL`` ran after the scripted plugin's hook: what the witness saw,
    the classifiers' tag, the routing decision, the provider's attempt."""
    happened = set(record.ctx.state.get("seen", ()))
    if "witnessed" in record.request.tags:
        happened.add("classifiers")
    if record.decision is not None:
        happened.add("router")
    if record.attempts:
        happened.add("provider")
    return tuple(stage for stage in ALL if stage in happened)


def without(*stages: str) -> tuple[str, ...]:
    return tuple(stage for stage in ALL if stage not in stages)


@dataclass
class Expected:
    ran: tuple[str, ...] = ALL
    active: tuple[str, ...] = ()
    answer: str | None = ECHOED  # the text of ctx.response; None: no answer left
    error: str | None = None  # PluginFailed's message
    warning: bool = False  # the hook's exception is logged, and the request goes on


BROKEN = "plugin 'scripted' failed: response.usage: expected a Usage, got NoneType"
TABLE: dict[tuple[str, str], Expected] = {
    ("Start", "CONTINUE"): Expected(),
    ("Start", "MODIFIED"): Expected(active=("scripted",), answer=ECHOED + " (modified)"),
    ("Start", "STOP"): Expected(ran=("PostResponse", "End"), active=("scripted",), answer=OWN_ANSWER),
    ("Start", "raise"): Expected(ran=(), answer=None, error="plugin 'scripted' failed: boom at Start"),
    ("Start", "break"): Expected(ran=(), answer=None, error=BROKEN),

    ("PreRouting", "CONTINUE"): Expected(),
    ("PreRouting", "MODIFIED"): Expected(active=("scripted",), answer=ECHOED + " (modified)"),
    ("PreRouting", "STOP"): Expected(ran=("Start", "classifiers", "PostResponse", "End"), active=("scripted",),
                                     answer=OWN_ANSWER),
    ("PreRouting", "raise"): Expected(ran=("Start", "classifiers"), answer=None,
                                      error="plugin 'scripted' failed: boom at PreRouting"),
    ("PreRouting", "break"): Expected(ran=("Start", "classifiers"), answer=None, error=BROKEN),

    ("PostResponse", "CONTINUE"): Expected(),
    ("PostResponse", "MODIFIED"): Expected(active=("scripted",), answer=ECHOED + " (modified)"),
    ("PostResponse", "STOP"): Expected(ran=without("PostResponse", "End"), active=("scripted",)),
    ("PostResponse", "raise"): Expected(warning=True),
    ("PostResponse", "break"): Expected(ran=without("PostResponse", "End"), answer=None, error=BROKEN),

    ("End", "CONTINUE"): Expected(),
    ("End", "MODIFIED"): Expected(active=("scripted",), answer=ECHOED + " (modified)"),  # still sent
    ("End", "STOP"): Expected(ran=without("End"), active=("scripted",)),  # the rest of the stage is skipped
    ("End", "raise"): Expected(warning=True),
    ("End", "break"): Expected(ran=without("End"), answer=None, error=BROKEN),
}


@pytest.mark.gen_test
@pytest.mark.parametrize(("stage", "outcome"), list(TABLE), ids=[f"{s}-{o}" for s, o in TABLE])
async def test_each_outcome_at_each_stage(pipeline, log_guard, stage: str, outcome: str) -> None:
    expected = TABLE[stage, outcome]
    if expected.warning:
        log_guard.expect("tornrouter.plugins", rf"plugin 'scripted' {HOOKS[stage]} hook failed: boom at {stage}")
    record = context()

    error: Any = None
    try:
        await pipeline(stage, outcome).run(record)
    except PluginFailed as exc:
        error = exc

    assert stages_that_ran(record) == expected.ran
    assert tuple(record.active_plugins) == expected.active
    assert (record.response.content[-1].text if record.response else None) == expected.answer
    if expected.error is None:
        assert error is None
    else:
        assert (error.status, error.plugin_id, error.message) == (500, "scripted", expected.error)


@pytest.mark.gen_test
async def test_stages_run_in_order(pipeline) -> None:
    """With every hook continuing, each stage sees what the one before it did:
    the classifiers' tags at PreRouting, the decision and the answer after."""
    seen: list[tuple[str, Any]] = []

    class Observer(BasePlugin):
        async def on_start(self, ctx: PluginContext) -> Flow:
            seen.append(("Start", dict(ctx.request.tags)))
            return Flow.CONTINUE

        async def pre_request(self, ctx: PluginContext) -> Flow:
            seen.append(("PreRouting", (dict(ctx.request.tags), ctx.decision)))
            return Flow.CONTINUE

        async def post_response(self, ctx: PluginContext) -> Flow:
            seen.append(("PostResponse", (ctx.decision.candidates[0].provider.name, ctx.response.content[-1].text)))
            return Flow.CONTINUE

        async def on_end(self, ctx: PluginContext) -> Flow:
            seen.append(("End", ctx.response.content[-1].text))
            return Flow.CONTINUE

    built = pipeline("Start", "CONTINUE")
    ordered = Pipeline([(Observer({}), ("*",))], built.classifiers, built.router, built.dispatcher)
    await ordered.run(context())

    assert seen == [
        ("Start", {}),
        ("PreRouting", ({"witnessed": "witnessed"}, None)),
        ("PostResponse", ("echo", ECHOED)),
        ("End", ECHOED),
    ]
