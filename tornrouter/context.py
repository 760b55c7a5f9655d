"""The two sides of one request in flight.

``PluginContext`` is what a plugin hook receives as ``ctx``: the request and the
answer it may change, its settings, a per-request ``state`` dict, the shared
HTTP client, and read-only views of the routing.  ``RequestRecord`` is the
router's own account of the request (routing, attempts, timings, usage, cost,
outcome), written by the pipeline, the dispatcher, access control and the
handler, and read by the request log and the metrics; plugins never see it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from tornado.httpclient import AsyncHTTPClient

    from .cache import CacheTicket
    from .canonical import ChatRequest, ChatResponse, Usage
    from .plugins.base import BasePlugin
    from .router import Candidate, Decision
    from .sessions import Affinity


class PluginContext:
    """``ctx`` in a plugin hook.

    ``request`` (the canonical ``ChatRequest``) and ``response`` (the
    ``ChatResponse`` slot: None until a provider or a plugin fills it) may be
    read, changed and replaced; the pipeline checks them after each hook.
    ``state`` is a dict shared by the hooks of one request, ``http`` the
    router's shared ``AsyncHTTPClient``, ``settings`` the settings of the plugin
    being called.  ``tags``, ``decision``, ``id`` and ``dry_run`` are read-only."""

    __slots__ = ("request", "response", "settings", "state", "http", "_record")

    def __init__(self, record: RequestRecord, http: AsyncHTTPClient) -> None:
        self.request: ChatRequest | None = None
        self.response: ChatResponse | None = None
        self.settings: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.http = http
        self._record = record

    @property
    def id(self) -> str:
        """The request's id, as in ``x-request-id`` and the log."""
        return self._record.id

    @property
    def tags(self) -> dict[str, str]:
        """The classifiers' tags (tag -> the classifier that set it); empty before they ran."""
        return self.request.tags if self.request is not None else {}

    @property
    def dry_run(self) -> bool:
        """The request is being explained (``x-tornrouter-dry-run``, ``tornrouter
        explain``, ``tornrouter replay``), not sent: Start and PreRouting run as
        they would, and a hook with side effects may skip them."""
        return self._record.dry_run

    @property
    def decision(self) -> Decision | None:
        """Where the router sends the request (``candidates``, ``matched``), once it
        has decided: from PostResponse on, or None if a plugin answered first."""
        return self._record.decision


class RequestRecord:
    """The router's account of one request, from which the log entry is built."""

    __slots__ = (
        "id", "endpoint", "ctx", "requested_model", "decision", "target", "plugins", "late_stages_ran", "opening",
        "attempts", "active_plugins", "lossy", "error", "usage", "started", "first_byte_at", "cancelled",
        "failed_status", "status", "key_name", "cost_usd", "continued", "cache", "upstream_s", "overhead_s",
        "token_count", "session", "affinity", "dry_run", "instance", "worker", "queue_s", "attempt_queue_s",
        "plugin_changes",
    )

    def __init__(self, request_id: str, endpoint: str, http: AsyncHTTPClient) -> None:
        self.id = request_id
        self.endpoint = endpoint
        self.ctx = PluginContext(self, http)
        self.requested_model: str | None = None
        self.decision: Decision | None = None
        self.target: Candidate | None = None  # the candidate being tried; in the end, the one that answered
        self.plugins: tuple[BasePlugin, ...] = ()  # those that apply to the requested model
        self.late_stages_ran = False  # PostResponse and End run once, whoever asks
        self.opening: asyncio.Future[Any] | None = None  # an upstream stream being opened (cancelled if the client leaves)
        self.attempts: list[dict[str, Any]] = []
        self.active_plugins: list[str] = []
        self.lossy: list[str] = []
        self.error: str | None = None
        self.usage: Usage | None = None  # as the answer first had it: plugins' later changes are not billed
        self.started = time.perf_counter()
        self.first_byte_at: float | None = None
        self.cancelled = False
        self.failed_status: int | None = None  # a stream that failed after its 200 was sent
        self.status: int | None = None  # what the client got, once the request has ended (499: it left)
        self.key_name: str | None = None  # the client key's name (never the key), when keys: are configured
        self.cost_usd: float | None = None  # from the price table, once the request has ended
        self.continued: dict[str, Any] | None = None  # continue_on_failure: a stream taken over mid-way (or why not)
        self.cache: CacheTicket | None = None  # the response cache's dealings with the request (tornrouter/cache)
        self.upstream_s = 0.0  # in upstream attempts and the waits between them
        self.queue_s = 0.0  # waiting for providers' concurrency slots (max_concurrent), over all attempts
        self.attempt_queue_s = 0.0  # the part of that in the attempt under way
        self.overhead_s: float | None = None  # the router's own time until the answer's head went out
        self.token_count: dict[str, Any] | None = None  # count_tokens: the count, and whether it is an estimate
        self.session: str | None = None  # the client's session (router.sessions), if it names one
        self.affinity: Affinity | None = None  # its session's pinned target, and what became of the pin
        self.dry_run = False  # x-tornrouter-dry-run: explained, not sent (tornrouter/explain.py)
        self.instance: str | None = None  # which instance and worker served it (set as it is recorded)
        self.worker: int | None = None
        # What each Start, PreRouting and PostResponse hook changed ({"plugin", "hook", "changes"}),
        # where one changed anything (tornrouter/plugin_changes.py).
        self.plugin_changes: list[dict[str, Any]] = []

    @property
    def request(self) -> ChatRequest | None:
        return self.ctx.request

    @property
    def response(self) -> ChatResponse | None:
        return self.ctx.response

    @property
    def served_by(self) -> str | None:
        """Who answered: the provider's name (the one tried last, if none did),
        ``plugin`` for a plugin's answer, None when nothing answered."""
        if self.target is not None:
            return self.target.provider.name
        return "plugin" if self.ctx.response is not None else None

    def overhead(self) -> float:
        """The router's own time so far: the time since the request came, less
        the time in upstream attempts and in providers' queues.  Taken once,
        when the answer's head goes out (for a stream, with its first byte);
        after that, what it was then."""
        if self.overhead_s is None:
            self.overhead_s = max(0.0, time.perf_counter() - self.started - self.upstream_s - self.queue_s)
        return self.overhead_s

    def cancel(self) -> None:
        """The client went away: an upstream stream being opened is given up."""
        self.cancelled = True
        if self.opening is not None:
            self.opening.cancel()

    def add_lossy(self, names: list[str]) -> None:
        for name in names:
            if name not in self.lossy:
                self.lossy.append(name)

    def queued(self, seconds: float) -> None:
        """The attempt under way waited ``seconds`` for its provider's slot."""
        self.queue_s += seconds
        self.attempt_queue_s += seconds

    def record_attempt(
        self, candidate: Candidate, status: int | None, error: str | None, seconds: float, *, body: str | None = None
    ) -> None:
        """``seconds``: the attempt's whole time; its wait for a slot, if it
        had one, is told apart as ``queue_ms`` and the rest is ``duration_ms``.
        ``body``: the upstream's error body (capped), kept as ``upstream_body``
        where there is one, since the error only summarises a body that is not the API's."""
        queued, self.attempt_queue_s = self.attempt_queue_s, 0.0
        seconds = max(0.0, seconds - queued)
        attempt: dict[str, Any] = {
            "provider": candidate.provider.name,
            "model": candidate.model,
            "status": status,
            "error": error,
            "duration_ms": round(seconds * 1000, 1),
        }
        if queued:
            attempt["queue_ms"] = round(queued * 1000, 1)
        self.upstream_s += seconds
        if body is not None:
            attempt["upstream_body"] = body
        self.attempts.append(attempt)
