"""HTTP handlers and the URL table (``routes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .admin import MetricsHandler, UsageHandler
from .api import ChatCompletionsHandler, HealthHandler, MessagesHandler
from .counting import CountTokensHandler
from .dashboard import (
    DashboardAssetHandler, DashboardEventsHandler, DashboardPageHandler, DashboardStatsHandler, assets_path, read_page,
)
from .models import ModelHandler, ModelsHandler
from .responses import InputTokensHandler, ResponsesHandler
from .stored_responses import InputItemsHandler, StoredResponseHandler

if TYPE_CHECKING:
    from ..runtime import Runtime


def routes(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    table: list[tuple[str, type, dict[str, Any]]] = [
        (r"/health", HealthHandler, {"runtime": runtime}),
        (r"/v1/chat/completions", ChatCompletionsHandler, {"runtime": runtime}),
        (r"/v1/messages", MessagesHandler, {"runtime": runtime}),
        (r"/v1/messages/count_tokens", CountTokensHandler, {"runtime": runtime}),
        (r"/v1/responses", ResponsesHandler, {"runtime": runtime}),
        (r"/v1/models", ModelsHandler, {"runtime": runtime}),
        (r"/v1/models/(.+)", ModelHandler, {"runtime": runtime}),
        (r"/v1/responses/input_tokens", InputTokensHandler, {"runtime": runtime}),
        (r"/v1/responses/([^/]+)", StoredResponseHandler, {"runtime": runtime}),
        (r"/v1/responses/([^/]+)/input_items", InputItemsHandler, {"runtime": runtime}),
        (r"/v1/usage", UsageHandler, {"runtime": runtime}),
        (r"/metrics", MetricsHandler, {"runtime": runtime}),
    ]
    if runtime.config.server.dashboard:
        table += [
            (r"/dashboard", DashboardPageHandler, {"page": read_page(), "admin": runtime.access.admin}),
            (r"/dashboard/events", DashboardEventsHandler, {"runtime": runtime}),
            (r"/dashboard/static/(.+)", DashboardAssetHandler, {"path": assets_path()}),
            (r"/dashboard/stats", DashboardStatsHandler, {"runtime": runtime}),
        ]
    return table
