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

    def record_attempt(self, candidate: Candidate, status: int | None, error: str | None, seconds: float) -> None:
        self.attempts.append(
            {
                "provider": candidate.provider.name,
                "model": candidate.model,
                "status": status,
                "error": error,
                "duration_ms": round(seconds * 1000, 1),
            }
        )

    def log_entry(self, status: int) -> dict[str, Any]:
        """The request log entry: the seed's fields, then what an operator needs more.

        Never raises, whatever a plugin left in the request or the response:
        the pipeline refuses what is not canonical after a Start or PreRouting
        hook (failing the request, which must still be logged), and a later
        hook's changes go unchecked.  A part that cannot be shown as usual is
        shown as its repr."""
        response, decision, target = self.response, self.decision, self.target
        # A request a plugin replaced with something else is not shown (the error names it).
        request = self.request if isinstance(self.request, ChatRequest) else None
        now = time.perf_counter()
        return {
            "ts_ms": int(time.time() * 1000),
            "id": self.id,
            "endpoint": self.endpoint,
            "provider": target.provider.name if target else ("plugin" if response else None),
            "requested_model": self.requested_model,
            "sent_model": target.model if target else (request.model if request else None),
            "duration_ms": round((now - self.started) * 1000, 1),
            "tags": _shown(lambda: list(request.tags), request.tags) if request else [],
            "plugins": self.active_plugins,
            "system": _shown(lambda: request.system_text() or None, request.system) if request else None,
            "messages": _shown(lambda: [m.to_json() for m in request.messages], request.messages) if request else [],
            "response": _shown(lambda: response.to_json(), response) if response else None,
            "error": self.error,
            "status": status,
            "stream": bool(request and request.stream),
            "usage": _shown(lambda: response.usage.to_json(), response) if response else None,
            "ttft_ms": round((self.first_byte_at - self.started) * 1000, 1) if self.first_byte_at else None,
            "routing": {"tags": _shown(lambda: dict(request.tags), request.tags) if request else {}, **(decision.to_json() if decision else {})},
            "lossy": self.lossy,
            "cancelled": self.cancelled,
            "attempts": self.attempts,
            "key": self.key_name,
            "cost_usd": self.cost_usd,
            "continued": self.continued,
        }


def _shown(render: Callable[[], Any], part: Any) -> Any:
    """``render()``, a part of the request or the response as the log shows
    it; ``repr(part)`` when a plugin left in it something ``render`` cannot show."""
    try:
        return render()
    except Exception:
        return repr(part)
