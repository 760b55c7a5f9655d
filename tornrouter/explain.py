"""Explain: what the router would do with a request, short of doing it.

One core, ``explain``, serves three callers: a request sent with
``x-tornrouter-dry-run: 1`` (``handlers/base.py``), ``tornrouter explain``
(``explain_command.py``) and ``tornrouter replay`` (``replay/``).  It runs
what comes before the provider call, as a real request runs it, and reports
each step:

- access: the key, and each limit with what is used and left, counted against
  nothing (``AccessControl.preview``; a model the key may not use is refused
  with the same 403 a real request gets);
- the Start hooks, the classifiers, the PreRouting hooks (they do run: that is
  what is explained, side effects included), with a diff of the canonical
  request, hook by hook (``plugin_changes.py``, as the log's ``plugin_changes``);
- routing: the route that matched, those before it and why each did not, the
  candidates in order with their health and load, the session's pin;
- for the first candidate: what the translation would lose, the estimated
  input tokens and their cost, and whether the response cache would answer.

Nothing is sent upstream, stored in the cache or billed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .canonical import ChatRequest, Usage
from .classifiers.builtin import estimate_input_tokens
from .config import Route
from .errors import NoProvider, RouterError
from .plugins.base import BasePlugin
from .plugins.pipeline import END, POST_RESPONSE, PRE_ROUTING, START
from .providers.base import HTTPProvider
from .router import Candidate, Decision, target_name

if TYPE_CHECKING:
    from .access import ClientKey
    from .context import RequestRecord
    from .runtime import Runtime

DRY_RUN_HEADER = "x-tornrouter-dry-run"
HOOKS = (START, PRE_ROUTING, POST_RESPONSE, END)
RUN_IN_DRY_RUN = (START, PRE_ROUTING)


def dry_run_requested(headers: Mapping[str, str]) -> bool:
    return headers.get(DRY_RUN_HEADER, "").strip().lower() in ("1", "true", "yes")


async def explain(runtime: Runtime, record: RequestRecord, key: ClientKey | None) -> dict[str, Any]:
    """The explanation of ``record``'s request (parsed, its cache directives
    read).  ``key``: the client key to hold it to, None for an open router or
    the admin key.  Raises what a real request would raise before its provider
    call (``Forbidden``, a plugin's or a classifier's failure), except a
    request no route takes, which is explained."""
    access = await runtime.access.preview(record, key)
    out: dict[str, Any] = {"object": "tornrouter.explanation", "id": record.id, "dry_run": True,
                           "endpoint": record.endpoint, "requested_model": record.request.model}
    try:
        await runtime.pipeline.prepare(record)
        failure = None
    except NoProvider as exc:
        failure = exc.message
    request = record.request
    out["tags"] = dict(request.tags)
    out["plugins"] = plugins_json(record.plugins, record.active_plugins)
    out["changes"] = [change for step in record.plugin_changes for change in step["changes"]]  # as the log has them
    out["routing"] = routing_json(runtime, record, failure)
    out["candidates"] = [candidate_json(c) for c in record.decision.candidates] if record.decision else []
    out["session"] = session_json(record)
    out["access"] = access
    first = record.decision.candidates[0] if record.decision else None
    out["lossy"] = lossy_json(first, request) if first else None
    out["estimate"] = estimate_json(runtime, first, request)
    out["cache"] = await runtime.cache.would_hit(record) if record.decision else {"enabled": False}
    if record.decision is None and failure is None:  # a Start or PreRouting hook stopped the pipeline
        out["stopped_by_plugin"] = {"plugin": record.active_plugins[-1] if record.active_plugins else None,
                                    "answered": record.response is not None}
    return out


def plugins_json(plugins: tuple[BasePlugin, ...], active: list[str]) -> list[dict[str, Any]]:
    """The plugins that apply to the requested model, the hooks each has, and
    which of those ran here (Start and PreRouting: the later ones need an answer)."""
    out = []
    for plugin in plugins:
        hooks = [hook for hook in HOOKS if getattr(type(plugin), hook) is not getattr(BasePlugin, hook)]
        out.append({"id": plugin.id, "hooks": hooks, "ran": [h for h in hooks if h in RUN_IN_DRY_RUN],
                    "active": plugin.id in active})  # returned MODIFIED or STOP, as the log's plugins
    return out


def routing_json(runtime: Runtime, record: RequestRecord, failure: str | None) -> dict[str, Any]:
    """The decision (``Decision.to_json``, as the log has it), the strategy,
    and the routes before the one that matched, each with why it did not."""
    request = record.request
    decision: Decision | None = record.decision
    out: dict[str, Any] = decision.to_json() if decision else {"matched": None}
    if failure is not None:
        out["error"] = failure
    if request.forced_provider is not None:
        out["forced_provider"] = request.forced_provider
        return out
    if decision is None and failure is None:
        return out  # a plugin answered before routing
    config = runtime.config.router
    if decision is not None and decision.index is not None:
        out["strategy"] = config.routes[decision.index].to.strategy
    elif decision is not None and decision.matched == "default" and config.default is not None:
        out["strategy"] = config.default.strategy
    stop = decision.index if decision is not None and decision.index is not None else len(config.routes)
    out["not_matched"] = [
        {"index": i, "pattern": route.model, "tags": list(route.tags), "reason": why_not(pattern, route, request)}
        for i, route, pattern, _ in runtime.router.routes[:stop]
    ]
    return out


def why_not(pattern: re.Pattern[str], route: Route, request: ChatRequest) -> str:
    if not pattern.match(request.model):
        return f"model '{request.model}' does not match '{route.model}'"
    missing = [tag for tag in route.tags if tag not in request.tags]
    return f"missing tag{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    provider = candidate.provider
    status = provider.status()
    return {
        "target": target_name(candidate),
        "provider": provider.name,
        "model": candidate.model,
        "kind": provider.kind,
        "weight": candidate.weight,
        "healthy": provider.healthy(),
        "breaker": status["breaker"],
        "in_flight": status["in_flight"],
        "queued": status["queued"],
        "max_concurrent": provider.config.max_concurrent,
    }


def session_json(record: RequestRecord) -> dict[str, Any] | None:
    if record.session is None:
        return None
    affinity = record.affinity
    out: dict[str, Any] = {"name": record.session, "pinned": affinity.pinned if affinity else None}
    if affinity is not None and affinity.skipped:
        out["pin_skipped"] = affinity.skipped
    if affinity is None:
        out["sticky"] = False  # one target, a route with sticky: false, or the state backend unreachable
    return out


def lossy_json(candidate: Candidate, request: ChatRequest) -> dict[str, Any]:
    """What sending ``request`` to ``candidate`` would lose in translation: its
    upstream body and headers are encoded (not signed, not sent), or the reason
    it would be refused (a hosted tool under ``hosted_tools: refuse``)."""
    provider = candidate.provider
    out: dict[str, Any] = {"target": target_name(candidate)}
    if not isinstance(provider, HTTPProvider):  # answers in process (echo): nothing is translated
        out["fields"] = []
        return out
    sent = dataclasses.replace(request, model=candidate.model)
    try:
        _, lossy = provider.encode(sent)
        provider.request_headers(sent, lossy)  # adds the client's API headers another API cannot carry
        if provider.config.hosted_tools == "refuse":
            provider.refuse_hosted(sent, lossy)
    except RouterError as exc:
        out["refused"] = {"status": exc.status, "message": exc.message}
        return out
    out["fields"] = list(dict.fromkeys(lossy))
    return out


def estimate_json(runtime: Runtime, candidate: Candidate | None, request: ChatRequest) -> dict[str, Any]:
    """Input tokens (characters / 4) and, at the first candidate's price, their
    cost, and the cost if the answer took all of ``max_tokens``."""
    tokens = estimate_input_tokens(request)
    out: dict[str, Any] = {"input_tokens": tokens, "method": "characters/4"}
    if candidate is None:
        return out
    provider, prices = candidate.provider, runtime.access.prices
    cost = prices.cost(provider.name, provider.vendor, candidate.model, Usage(input_tokens=tokens))
    out["input_cost_usd"] = None if cost is None else round(cost, 8)
    if request.max_tokens is not None and cost is not None:
        most = prices.cost(provider.name, provider.vendor, candidate.model,
                           Usage(input_tokens=tokens, output_tokens=request.max_tokens))
        out["max_cost_usd"] = round(most, 8)
    return out
