"""The chat-completions and messages endpoints, and ``/health``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado.web import RequestHandler

from ..formats import codec_for
from .base import APIHandler, dumps

if TYPE_CHECKING:
    from ..runtime import Runtime


class ChatCompletionsHandler(APIHandler):
    """``POST /v1/chat/completions``: the OpenAI API."""

    codec = codec_for("openai")
    endpoint = "/v1/chat/completions"


class MessagesHandler(APIHandler):
    """``POST /v1/messages``: the Anthropic API."""

    codec = codec_for("anthropic")
    endpoint = "/v1/messages"


class HealthHandler(RequestHandler):
    """``GET /health``: ``ok`` while the process serves (for load balancers and
    supervisors).  ``GET /health?verbose=1``: JSON with each provider's
    ``Provider.status()`` (kind, requests in flight and queued, breaker state;
    never a key), the router's requests in flight and each route mirror's
    counts (``RouteMirror.status``), for operators and the dashboard."""

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def get(self) -> None:
        if self.get_query_argument("verbose", "") in ("", "0", "false"):
            self.set_header("Content-Type", "text/plain")
            self.finish("ok")
            return
        runtime = self.runtime
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(dumps({
            "status": "ok",
            "in_flight": len(runtime.in_flight),
            "max_in_flight": runtime.config.server.max_in_flight,
            "providers": {name: provider.status() for name, provider in runtime.providers.items()},
            "mirrors": runtime.mirrors.status(),
        }))

