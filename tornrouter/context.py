"""``RequestContext``: one request's state as it goes through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .canonical import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from tornado.httpclient import AsyncHTTPClient

    from .router import Candidate, Decision


class RequestContext:
    """What a plugin hook receives as ``ctx``, and what the request log records.

    Plugins may read and change ``request`` and ``response`` and use ``state``
    (a per-request dict shared by all hooks) and ``http`` (the router's shared
    client).  ``settings`` is the settings of the plugin being called.  The rest
    is filled in by the router and is read-only for plugins: ``decision`` (the
    routing decision, once made), ``active_plugins``, ``lossy``.
    """

    __slots__ = (
        "id", "endpoint", "request", "response", "settings", "http", "state",
        "requested_model", "decision", "target", "attempts", "active_plugins", "lossy", "error",
        "started", "first_byte_at", "cancelled", "failed_status",
        "key_name", "cost_usd", "continued",
    )

    def __init__(self, request_id: str, endpoint: str, http: AsyncHTTPClient) -> None:
        self.id = request_id
        self.endpoint = endpoint
        self.http = http
        self.request: ChatRequest | None = None
        self.response: ChatResponse | None = None
        self.settings: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.requested_model: str | None = None
        self.decision: Decision | None = None
        self.target: Candidate | None = None  # the candidate being tried; in the end, the one that answered
        self.attempts: list[dict[str, Any]] = []
        self.active_plugins: list[str] = []
        self.lossy: list[str] = []
        self.error: str | None = None
        self.started = time.perf_counter()
        self.first_byte_at: float | None = None
        self.cancelled = False
        self.failed_status: int | None = None  # a stream that failed after its 200 was sent
        self.key_name: str | None = None  # the client key's name (never the key), when keys: are configured
        self.cost_usd: float | None = None  # from the price table, once the request has ended
        self.continued: dict[str, Any] | None = None  # continue_on_failure: a stream taken over mid-way (or why not)

    def add_lossy(self, names: list[str]) -> None:
        for name in names:
            if name not in self.lossy:
                self.lossy.append(name)

    def record_attempt(
        self, candidate: Candidate, status: int | None, error: str | None, seconds: float, *, body: str | None = None
    ) -> None:
        """``body``: the upstream's error body (capped), kept as ``upstream_body``
        where there is one, since the error only summarises a body that is not the API's."""
        attempt: dict[str, Any] = {
            "provider": candidate.provider.name,
            "model": candidate.model,
            "status": status,
            "error": error,
            "duration_ms": round(seconds * 1000, 1),
        }
        if body is not None:
            attempt["upstream_body"] = body
        self.attempts.append(attempt)

    def log_entry(self, status: int) -> dict[str, Any]:
        """The request log entry: the seed's fields, then what an operator needs more.

        It is built whatever the request went through: a field that cannot be
        built (a plugin left a value of the wrong type where it is read) is
        null, and ``entry_error`` names it and why.  A request is never lost
        from the log for the sake of one field."""
        entry: dict[str, Any] = {}
        problems = []
        for name, build in ENTRY_FIELDS:
            try:
                entry[name] = build(self, status)
            except Exception as exc:  # noqa: BLE001 - the entry must be written; the problem goes in it
                entry[name] = None
                problems.append(f"{name}: {exc!r}")
        entry["entry_error"] = "; ".join(problems) or None
        return entry


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# The log entry's fields, in order, each built on its own (``log_entry``).
ENTRY_FIELDS: tuple[tuple[str, Callable[[RequestContext, int], Any]], ...] = (
    ("ts_ms", lambda ctx, status: int(time.time() * 1000)),
    ("id", lambda ctx, status: ctx.id),
    ("endpoint", lambda ctx, status: ctx.endpoint),
    ("provider", lambda ctx, status: ctx.target.provider.name if ctx.target else ("plugin" if ctx.response else None)),
    ("requested_model", lambda ctx, status: ctx.requested_model),
    ("sent_model", lambda ctx, status: ctx.target.model if ctx.target else (ctx.request.model if ctx.request else None)),
    ("duration_ms", lambda ctx, status: _ms(time.perf_counter() - ctx.started)),
    ("tags", lambda ctx, status: list(ctx.request.tags) if ctx.request else []),
    ("plugins", lambda ctx, status: ctx.active_plugins),
    ("system", lambda ctx, status: ctx.request.system_text() or None if ctx.request else None),
    ("messages", lambda ctx, status: [m.to_json() for m in ctx.request.messages] if ctx.request else []),
    ("response", lambda ctx, status: ctx.response.to_json() if ctx.response else None),
    ("error", lambda ctx, status: ctx.error),
    ("status", lambda ctx, status: status),
    ("stream", lambda ctx, status: bool(ctx.request and ctx.request.stream)),
    ("usage", lambda ctx, status: ctx.response.usage.to_json() if ctx.response else None),
    ("ttft_ms", lambda ctx, status: _ms(ctx.first_byte_at - ctx.started) if ctx.first_byte_at else None),
    ("routing", lambda ctx, status: {
        "tags": dict(ctx.request.tags) if ctx.request else {}, **(ctx.decision.to_json() if ctx.decision else {}),
    }),
    ("lossy", lambda ctx, status: ctx.lossy),
    ("cancelled", lambda ctx, status: ctx.cancelled),
    ("attempts", lambda ctx, status: ctx.attempts),
    ("key", lambda ctx, status: ctx.key_name),
    ("cost_usd", lambda ctx, status: ctx.cost_usd),
    ("continued", lambda ctx, status: ctx.continued),
)
