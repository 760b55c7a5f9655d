"""``Runtime`` (everything a running router holds, built once from the config)
and ``make_app`` (the Tornado application over it)."""

from __future__ import annotations

import tornado.web
from tornado.curl_httpclient import CurlAsyncHTTPClient

from .access import AccessControl, make_backend
from .cache import ResponseCache
from .classifiers import Classifiers
from .components import Components
from .config import Config
from .context import RequestRecord
from .dispatch import Dispatcher
from .events import EventBus
from .fleet import Fleet, Placement
from .handlers import routes
from .handlers.base import CLIENT_CLOSED
from .inflight import InFlight
from .metrics import Metrics
from .model_catalogue import ModelCatalogue
from .plugins.pipeline import Pipeline
from .providers import make_provider
from .request_log import RequestLog, entry_line, log_entry
from .responses_store import make_responses_store
from .router import ModelRouter
from .sessions import Sessions


class Runtime:
    """The shared parts of one router process: the upstream HTTP client, the
    providers, the pipeline, the request log and the dashboard's event bus.
    Handlers get it through ``initialize``; nothing lives in module globals.

    A server gets one from ``await Runtime.start(config)`` and closes it with
    ``await runtime.aclose()``.  ``Runtime(config)`` alone builds one whose
    plugins and classifiers are not set up."""

    def __init__(self, config: Config, previous: Runtime | None = None, components: Components | None = None,
                 placement: Placement | None = None) -> None:
        self.config = config
        self.components = components if components is not None else Components(config)
        self.in_flight = InFlight()  # the API requests being served (reload, graceful stop)
        self._owns_log = True  # False once a reloaded successor took the request log over
        # One client for every upstream; force_instance keeps it out of
        # AsyncHTTPClient's per-loop cache, so it is ours to configure and close.
        # max_body_size bounds what one upstream answer may hold in memory (streams included).
        self.http = CurlAsyncHTTPClient(
            force_instance=True, max_clients=config.server.max_clients, max_body_size=config.server.max_response_bytes
        )
        self.providers = {name: make_provider(p, self.http) for name, p in config.providers.items()}
        self.router = ModelRouter(config.router, self.providers)
        # The response cache; a reload keeps its store, entries and all, when it stays where it was.
        self.cache = ResponseCache.build(config, previous.cache if previous is not None else None)
        self.pipeline = Pipeline(
            self.components.plugins, Classifiers(self.components.classifiers), self.router, Dispatcher(), self.cache
        )
        inherited = _inherited_log(config, previous)
        self.request_log = inherited or (RequestLog(config.request_log) if config.request_log else None)
        self.events = previous.events if previous is not None else EventBus()
        self.models = ModelCatalogue(self.router.model_names())
        # Access control and metrics (tornrouter/access, tornrouter/metrics).  A reload
        # keeps the metrics (counters run on) and, with the same state: section, the
        # state backend (limits and usage totals held in memory carry over).
        self.metrics = previous.metrics if previous is not None else Metrics()
        # The fleet's view (tornrouter/fleet): its link, aggregate and ticker carry on over reloads, as the bus does.
        self.fleet = previous.fleet if previous is not None else Fleet(
            config, self.events, placement or Placement.of(config), self.metrics.fleet_dropped)
        self._owns_fleet = True
        self.metrics.watch(self.providers.values(), lambda: self.access.outage.since is None)
        self.metrics.watch_cache(self.cache.size_bytes)
        same_state = previous is not None and previous._owns_backend and previous.config.state == config.state
        self.access = AccessControl(config, previous.access.backend if same_state else make_backend(config), on_refusal=self.metrics.refused)
        self.sessions = self.pipeline.sessions = Sessions(config.router.sessions, self.access.backend, self.access.outage)
        self._owns_backend = True
        # Stored responses (Responses API) carry over the same way: in memory, a
        # reload must not forget the conversations clients are continuing.
        same_store = same_state and previous._owns_store and previous.config.responses == config.responses
        self.responses = previous.responses if same_store else make_responses_store(config)
        self._owns_store = True
        if same_state:
            previous._owns_backend = False
        if same_store:
            previous._owns_store = False
        if previous is not None:
            previous._owns_fleet = False
        self.fleet.watch(self.providers)  # the health strip reads this runtime's providers from now on
        if inherited is not None:  # last, once nothing can fail
            previous._owns_log = False
        self.cache.take_over(previous.cache if previous is not None else None)

    @classmethod
    async def start(cls, config: Config, previous: Runtime | None = None, placement: Placement | None = None) -> Runtime:
        """A runtime ready to serve: its plugins and classifiers are built and
        set up (``Components.setup``) before the rest, so that ``previous`` (the
        runtime a reload replaces) hands nothing over to a runtime that will
        not serve.  Raises ``ConfigError`` (a constructor or a ``setup`` that
        failed, named) or what building the rest raises, having closed what
        was set up."""
        components = Components(config)
        await components.setup()
        try:
            runtime = cls(config, previous, components, placement)
        except BaseException:
            await components.close()
            raise
        if previous is None:  # a reloaded runtime finds the fleet's link and ticker running
            await runtime.fleet.start()
        return runtime

    async def aclose(self) -> None:
        """Close it all, once its requests are done or given up on: the plugins
        and classifiers (their ``close``), the access state, then the client
        and the request log."""
        await self.components.close()
        if self._owns_fleet:
            await self.fleet.aclose()
        await self.close_access()
        await self.cache.aclose()
        self.close()

    def record(self, record: RequestRecord) -> None:
        """Write one handled request to the request log and the dashboard, once:
        a request a stop has already recorded as abandoned is not written again."""
        if self.in_flight.end(record):
            self._publish(record)

    def _publish(self, record: RequestRecord) -> None:
        record.instance, record.worker = self.fleet.placement.instance, self.fleet.placement.worker
        entry = log_entry(record)
        line = entry_line(entry)
        if self.request_log is not None:
            self.request_log.write(line)
        self.events.publish(line, entry)

    def close(self) -> None:
        """Close the upstream client and the request log (writing what is queued),
        unless a successor took the log over.  A client with transfers still
        running is left open: Tornado's curl client cannot be closed under them
        (removing their handles arms a timer that later fires on the closed
        multi handle), and only a stop that gave up on requests gets here with
        some, just before the process exits."""
        if not self.upstream_busy():
            self.http.close()
        if self.request_log is not None and self._owns_log:
            self.request_log.close()

    def upstream_busy(self) -> bool:
        """Whether upstream transfers are running or queued.  A cancelled stream's
        transfer stops at libcurl's next progress call, on the next loop turn.
        (Tornado's curl client keeps this in private fields: no public API says it.)"""
        http = self.http
        return bool(http._requests) or len(http._free_list) < len(http._curls)

    async def close_access(self) -> None:
        """Before ``close``: the usage being written goes out, and the state
        backend's and the stored responses' connections are closed, unless a
        reloaded successor uses them."""
        await self.access.drain()
        if self._owns_backend:
            await self.access.backend.aclose()
        if self._owns_store:
            await self.responses.aclose()

    def abandon_in_flight(self, reason: str) -> int:
        """Record every request still running as cancelled (a stop that gave up
        on them); their own recording, should it come, is then skipped."""
        abandoned = self.in_flight.abandon()
        for record in abandoned:
            record.cancelled = True
            record.error = record.error or reason
            record.status = CLIENT_CLOSED
            self._publish(record)
        return len(abandoned)


def _inherited_log(config: Config, previous: Runtime | None) -> RequestLog | None:
    """After a reload (``Runtime(config, previous)``) the new runtime keeps the old
    one's dashboard event bus (open feeds and their history carry on) and, when
    the file is the same, its request log, so that one writer thread appends to
    a file; the old runtime goes on using both for its requests in flight."""
    if previous is None or previous.request_log is None or not previous._owns_log:
        return None
    return previous.request_log if previous.request_log.path == config.request_log else None


def make_app(runtime: Runtime) -> tornado.web.Application:
    return tornado.web.Application(routes(runtime))
