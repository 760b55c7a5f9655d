"""What the plugins changed: the canonical request around each Start and
PreRouting hook, the answer around each PostResponse hook, compared as JSON.

``Pipeline._stage`` snapshots only around the plugins that override the hook
being run, so a router without such plugins pays nothing; each hook that
changed something leaves ``{"plugin", "hook", "changes"}`` in
``RequestRecord.plugin_changes``.  The request log keeps them as
``plugin_changes`` (each text capped, ``logged``; shaped under ``log.bodies``
by ``log_bodies.changes_shape``); the dry run's ``changes`` are the same
changes (``tornrouter/explain.py``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .canonical import ChatRequest, ChatResponse
    from .context import PluginContext

# The most characters of one text a log entry keeps of a change's before and after.
CAPPED_CHARS = 500


def request_json(request: ChatRequest) -> dict[str, Any]:
    """The canonical request as JSON, to compare before and after the hooks."""
    return {
        "model": request.model,
        "system": [block.to_json() for block in request.system],
        "messages": [message.to_json() for message in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop),
        "stream": request.stream,
        "tools": [tool.to_json() for tool in request.tools],
        "tool_choice": request.tool_choice.to_json() if request.tool_choice else None,
        "user": request.user,
        "reasoning": dataclasses.asdict(request.reasoning) if request.reasoning else None,
        "web_search": request.web_search,
        "extra": request.extra,
        "headers": request.headers,
    }


def response_json(response: ChatResponse | None) -> dict[str, Any] | None:
    return response.to_json() if response is not None else None


def snapshot(ctx: PluginContext, early: bool) -> bytes:
    """The request (``early``: Start and PreRouting) or the answer as it is now,
    as JSON text: a copy no later change reaches (``extra``, ``headers`` and a
    block's extra fields are the live objects' own dicts, which a plugin may
    change in place), and one that a hook which changed nothing leaves equal."""
    value = request_json(ctx.request) if early else response_json(ctx.response)
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # JSON cannot hold it (an integer past 64 bits, a loop): compared as its repr, never a failure
        return orjson.dumps(repr(value))


def changes_between(before: bytes, after: bytes) -> list[dict[str, Any]]:
    """``diff`` of two snapshots; nothing to walk when their text is the same
    (a hook that looked and left all as it was: the common case)."""
    return [] if before == after else diff(orjson.loads(before), orjson.loads(after))


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """What changed from ``before`` to ``after``, as JSON-pointer paths with
    the values either side (``op``: ``replace``, ``add`` or ``remove``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for name in [*before, *(k for k in after if k not in before)]:
            child = f"{path}/{str(name).replace('~', '~0').replace('/', '~1')}"
            if name not in after:
                changes.append({"op": "remove", "path": child, "before": before[name]})
            elif name not in before:
                changes.append({"op": "add", "path": child, "after": after[name]})
            else:
                changes += diff(before[name], after[name], child)
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for i in range(max(len(before), len(after))):
            if i >= len(after):
                changes.append({"op": "remove", "path": f"{path}/{i}", "before": before[i]})
            elif i >= len(before):
                changes.append({"op": "add", "path": f"{path}/{i}", "after": after[i]})
            else:
                changes += diff(before[i], after[i], f"{path}/{i}")
        return changes
    if before == after and type(before) is type(after):
        return []
    return [{"op": "replace", "path": path or "/", "before": before, "after": after}]


def logged(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``steps`` as the log keeps them in full: each text of a before or an
    after capped at ``CAPPED_CHARS`` (and the change marked ``truncated``), so
    that a plugin rewriting a long prompt does not double the log line."""
    out = []
    for step in steps:
        changes = []
        for change in step["changes"]:
            kept = dict(change)
            for side in ("before", "after"):
                if side in kept:
                    kept[side], cut = _capped(kept[side])
                    if cut:
                        kept["truncated"] = True
            changes.append(kept)
        out.append({**step, "changes": changes})
    return out


def _capped(value: Any) -> tuple[Any, bool]:
    """``value`` with each string in it cut to ``CAPPED_CHARS``; and whether one was."""
    if isinstance(value, str):
        return (value[:CAPPED_CHARS] + "…", True) if len(value) > CAPPED_CHARS else (value, False)
    if isinstance(value, dict):
        pairs = {name: _capped(item) for name, item in value.items()}
        return {name: pair[0] for name, pair in pairs.items()}, any(pair[1] for pair in pairs.values())
    if isinstance(value, list):
        pairs = [_capped(item) for item in value]
        return [pair[0] for pair in pairs], any(pair[1] for pair in pairs)
    return value, False
