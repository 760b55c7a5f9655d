"""``Mirrors``: a route's shadow traffic, sent once the client has its answer.

A route with ``mirror: {to, sample, max_concurrent}`` has a sample of its
answered requests sent again, as they went to the primary (the plugins'
changes included), to the mirror target, through the same provider code
(translation included) but none of the dispatcher's safety nets: one attempt,
no retry, no fallback, and no word to the primary's circuit breaker or to the
session pins.  The mirror is asked for a whole answer even when the client
streamed: there is no client to stream to, and a whole answer is what is
compared.

It starts in ``APIHandler.on_finish``, after the answer is sent and the
request recorded, as a task of its own: the client's answer neither waits for
it nor changes with it.  It is nobody's request: it is admitted by no key,
counted in no limit and charged to no budget; its cost goes in its own
record and metric.  Each route's mirror has its own cap: a request sampled
while ``max_concurrent`` mirrors are running is dropped (counted), never
queued, so a slow mirror target costs the router a bounded number of tasks.
Nor does it take a slot of the provider's ``max_concurrent``: the primary
traffic of the same provider never waits behind shadow traffic.

The mirrors send through their own client (``MirrorClient``) and their own
instance of each target provider, so that shadow traffic holds none of the
router's upstream transfers and no state of the providers the clients use.

Which requests: a hash of the request id below ``sample``, so that the same
id is sampled the same way every time (a replay of the log agrees).

Each mirrored request gets one record in the request log and on the dashboard
(``type: mirror``), after the primary's entry; ``aclose`` stops the mirrors
still running (a stop, the end of a reloaded runtime), each then recorded as
cancelled, and no task or transfer of theirs outlives it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from ..canonical import ChatRequest, ChatResponse
from ..config import Config
from ..config.objects import Mirror, Route
from ..errors import RouterError, UpstreamError
from ..providers import make_provider
from .client import MirrorClient
from .compare import compare

if TYPE_CHECKING:
    from ..access.prices import PriceTable
    from ..context import RequestRecord
    from ..metrics import Metrics
    from ..providers.base import Provider

log = logging.getLogger("tornrouter.mirror")

CANCELLED = "cancelled: the router closed before the mirror answered"
STOP_GRACE_S = 5.0  # for a mirror's aborted transfer to end, before its task is cancelled


def sampled(request_id: str, sample: float) -> bool:
    """Whether the request ``request_id`` is mirrored at rate ``sample``: the
    same answer for the same id, whichever process or replay asks."""
    draw = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return draw < sample


class RouteMirror:
    """One route's mirror: where it sends, and what it is doing and has done."""

    def __init__(self, index: int, route: Route, mirror: Mirror, provider: Provider) -> None:
        self.index = index
        self.pattern = route.model
        self.config = mirror
        self.provider = provider
        self.in_flight = 0
        self.mirrored = 0  # started
        self.dropped = 0  # sampled while at max_concurrent

    def target(self, sent_model: str) -> str:
        return f"{self.provider.name}/{self.config.to.model or sent_model}"

    def status(self) -> dict[str, Any]:
        """For ``/health?verbose=1``."""
        return {
            "route": self.index, "pattern": self.pattern, "to": self.target("*"), "sample": self.config.sample,
            "max_concurrent": self.config.max_concurrent, "in_flight": self.in_flight,
            "mirrored": self.mirrored, "dropped": self.dropped,
        }


class Mirrors:
    """The mirrors of a runtime's routes.  ``emit`` writes a record's line to
    the request log and the dashboard."""

    def __init__(self, config: Config, prices: PriceTable, metrics: Metrics, emit: Callable[[str], None]) -> None:
        mirrored = [(index, route) for index, route in enumerate(config.router.routes) if route.mirror is not None]
        self.client: MirrorClient | None = None
        providers: dict[str, Provider] = {}
        if mirrored:
            self.client = MirrorClient(sum(route.mirror.max_concurrent for _, route in mirrored),
                                       config.server.max_response_bytes)
            for _, route in mirrored:
                name = route.mirror.to.provider
                if name not in providers:
                    providers[name] = make_provider(config.providers[name], self.client)
        self.routes = {index: RouteMirror(index, route, route.mirror, providers[route.mirror.to.provider])
                       for index, route in mirrored}
        self.prices = prices
        self.metrics = metrics
        self.emit = emit
        self.tasks: set[asyncio.Task[None]] = set()

    def consider(self, record: RequestRecord) -> None:
        """Start the mirror of a handled request, if its route has one, it was
        answered (not failed, not abandoned, nothing went wrong after) and it
        is sampled."""
        if not self.routes or self.client.stopping:
            return
        decision = record.decision
        mirror = self.routes.get(decision.index) if decision is not None and decision.index is not None else None
        if mirror is None or record.request is None or record.response is None or record.cancelled or record.error:
            return  # an answer a late plugin broke (record.error) is not one to compare
        if record.status is None or record.status >= 400 or not sampled(record.id, mirror.config.sample):
            return
        sent_model = record.request.model
        target = mirror.target(sent_model)
        if mirror.in_flight >= mirror.config.max_concurrent:
            mirror.dropped += 1
            self.metrics.mirrored(mirror.index, target, "dropped")
            return
        mirror.in_flight += 1
        mirror.mirrored += 1
        request = shadow_request(record.request, mirror.config.to.model or sent_model)
        task = asyncio.ensure_future(self._shadow(mirror, target, record.id, request, record.response))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _shadow(self, mirror: RouteMirror, target: str, request_id: str, request: ChatRequest,
                      primary: ChatResponse) -> None:
        started = time.perf_counter()
        response: ChatResponse | None = None
        status: int | None = None
        error: str | None = None
        try:
            response, _ = await mirror.provider.send(request)
            status = 200
        except UpstreamError as exc:
            status, error = exc.upstream_status, exc.message
            if self.client.stopping:  # aborted by aclose
                status, error = None, CANCELLED
        except RouterError as exc:  # refused before it was sent (a hosted tool the target cannot run...)
            status, error = exc.status, exc.message
        except asyncio.CancelledError:
            error = CANCELLED
            raise
        except Exception:  # noqa: BLE001 - a mirror's failure is its record's, never the router's
            log.exception("mirror of %s to %s failed", request_id, target)
            error = "internal error"
        finally:
            mirror.in_flight -= 1
            self._record(mirror, target, request_id, request.model, primary, response, status, error,
                         time.perf_counter() - started)

    def _record(self, mirror: RouteMirror, target: str, request_id: str, model: str, primary: ChatResponse,
                response: ChatResponse | None, status: int | None, error: str | None, seconds: float) -> None:
        usage = response.usage if response is not None else None
        cost = None
        if usage is not None:
            cost = self.prices.cost(mirror.provider.name, mirror.provider.vendor, model, usage)
            cost = None if cost is None else round(cost, 8)
        outcome = "answered" if response is not None else "cancelled" if error == CANCELLED else "failed"
        self.metrics.mirrored(mirror.index, target, outcome, cost)
        record = {
            "type": "mirror",
            "ts_ms": int(time.time() * 1000),
            "id": request_id,
            "route": mirror.index,
            "pattern": mirror.pattern,
            "target": target,
            "status": status,
            "error": error,
            "latency_ms": round(seconds * 1000, 1),
            "usage": usage.to_json() if usage is not None else None,
            "cost_usd": cost,
            "compare": compare(primary, response) if response is not None else None,
        }
        self.emit(orjson.dumps(record).decode())

    def status(self) -> list[dict[str, Any]]:
        return [mirror.status() for mirror in self.routes.values()]

    async def aclose(self) -> None:
        """Stop the mirrors still running and wait for them to end (each is
        recorded), then close their client.  A task whose transfer has not
        ended within ``STOP_GRACE_S`` (none should) is cancelled."""
        if self.client is None or self.client.stopping:
            return
        self.client.stop()
        if self.tasks:
            _, late = await asyncio.wait(list(self.tasks), timeout=STOP_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.client.close()


def shadow_request(request: ChatRequest, model: str) -> ChatRequest:
    """The primary's request for the mirror target: its model, whole (not
    streamed).  ``stream_options`` goes with the stream: an OpenAI upstream
    refuses it on a request that does not stream."""
    extra = request.extra
    if "stream_options" in extra:
        extra = {name: value for name, value in extra.items() if name != "stream_options"}
    return replace(request, model=model, stream=False, extra=extra)
