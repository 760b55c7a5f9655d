"""``Runtime`` (everything a running router holds, built once from the config)
and ``make_app`` (the Tornado application over it)."""

from __future__ import annotations

import json
from typing import Any

import tornado.web
from tornado.curl_httpclient import CurlAsyncHTTPClient

from .classifiers import BaseClassifier, Classifiers
from .config import ComponentEntry, Config
from .context import RequestContext
from .dispatch import Dispatcher
from .errors import ConfigError
from .events import EventBus
from .handlers import routes
from .handlers.api import models_list
from .plugins import BasePlugin
from .plugins.pipeline import Pipeline
from .providers import make_provider
from .request_log import RequestLog
from .router import ModelRouter


def build_components(config: Config) -> tuple[list[BaseClassifier], list[tuple[BasePlugin, tuple[str, ...]]]]:
    """Instantiate the configured classifiers and plugins; a constructor that
    fails is a config problem, reported with the entry's path."""
    problems: list[str] = []

    def make(entry: ComponentEntry, path: str) -> Any:
        try:
            return entry.cls(entry.settings)
        except Exception as exc:
            problems.append(f"{path}: {entry.use}: {exc}")
            return None

    classifiers = [make(e, f"classifiers.{i}") for i, e in enumerate(config.classifiers)]
    plugins = [(make(e, f"plugins.{i}"), e.models) for i, e in enumerate(config.plugins)]
    if problems:
        raise ConfigError(problems)
    return classifiers, plugins


class Runtime:
    """The shared parts of one router process: the upstream HTTP client, the
    providers, the pipeline, the request log and the dashboard's event bus.
    Handlers get it through ``initialize``; nothing lives in module globals."""

    def __init__(self, config: Config) -> None:
        self.config = config
        classifiers, plugins = build_components(config)
        # One client for every upstream; force_instance keeps it out of
        # AsyncHTTPClient's per-loop cache, so it is ours to configure and close.
        self.http = CurlAsyncHTTPClient(force_instance=True, max_clients=config.server.max_clients)
        self.providers = {name: make_provider(p, self.http) for name, p in config.providers.items()}
        self.router = ModelRouter(config.router, self.providers)
        self.pipeline = Pipeline(plugins, Classifiers(classifiers), self.router, Dispatcher())
        self.request_log = RequestLog(config.request_log) if config.request_log else None
        self.events = EventBus()
        self.models_json = models_list(self.router.model_names())

    def record(self, ctx: RequestContext, status: int) -> None:
        """Write one handled request to the request log and the dashboard."""
        line = json.dumps(ctx.log_entry(status), ensure_ascii=False, separators=(",", ":"), default=str)
        if self.request_log is not None:
            self.request_log.write(line)
        self.events.publish(line)

    def close(self) -> None:
        self.http.close()
        if self.request_log is not None:
            self.request_log.close()


def make_app(runtime: Runtime) -> tornado.web.Application:
    return tornado.web.Application(routes(runtime))
