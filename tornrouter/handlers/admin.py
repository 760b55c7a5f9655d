"""The operator's endpoints: ``GET /metrics``, ``GET /v1/usage``, and
``AdminOnly``, the gate the dashboard passes through too.

With ``server.admin_key`` set they ask for it, as ``Authorization: Bearer``
(or ``x-api-key``); the dashboard page and its EventSource feed also take it
as ``?key=``, because a browser's ``EventSource`` cannot send headers.  Without
it they are open, as the dashboard always was (the router says so at start).
A client key may read its own usage, and only its own.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from tornado.web import Finish, RequestHandler

from ..access import AdminKey
from ..errors import Forbidden, RouterError, Unauthorized
from ..formats import codec_for
from ..formats.base import Codec

if TYPE_CHECKING:
    from ..runtime import Runtime

_QUERY_KEY = re.compile(r"([?&]key=)[^&]*")
_OPENAI = codec_for("openai")


def finish_with_error(handler: RequestHandler, error: RouterError, codec: Codec = _OPENAI) -> NoReturn:
    """End the request with ``error`` in OpenAI's shape (these endpoints are not
    tied to one API; that shape is the common one), or in ``codec``'s."""
    handler.set_status(error.status)
    for name, value in error.headers.items():
        handler.set_header(name, value)
    if isinstance(error, Unauthorized):
        handler.set_header("WWW-Authenticate", 'Bearer realm="tornrouter"')
    handler.set_header("Content-Type", "application/json")
    raise Finish(json.dumps(codec.error_body(error)))


class AdminOnly(RequestHandler):
    """Refuses, in ``prepare``, a request without the admin key.  Subclasses set
    ``self.admin``; ``key_in_query`` allows ``?key=`` (pages and EventSource)."""

    admin: AdminKey
    key_in_query: ClassVar[bool] = False

    def prepare(self) -> Any:
        query_key = self.get_query_argument("key", None) if self.key_in_query else None
        if not self.admin.matches(self.request.headers, query_key):
            finish_with_error(self, Unauthorized("this endpoint needs the admin key (server.admin_key)"))
        return super().prepare()

    def _request_summary(self) -> str:
        # Tornado's access and error log lines quote the URI: keep ?key= out of them.
        uri = _QUERY_KEY.sub(r"\1***", self.request.uri or "")
        return f"{self.request.method} {uri} ({self.request.remote_ip})"


class MetricsHandler(AdminOnly):
    """``GET /metrics``: Prometheus exposition text (see ``tornrouter.metrics``)."""

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.admin = runtime.access.admin

    def get(self) -> None:
        body, content_type = self.runtime.metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(body)


class UsageHandler(RequestHandler):
    """``GET /v1/usage?period=day|month[&key=<name>][&date=YYYY-MM-DD|YYYY-MM]``:
    requests, tokens and cost per key and model, from the state backend."""

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def get(self) -> None:
        try:
            name = self._readable(self.get_query_argument("key", None))
            period, date = self.get_query_argument("period", "day"), self.get_query_argument("date", None)
            report = await self.runtime.access.usage(period, name, date)
        except RouterError as error:
            return finish_with_error(self, error)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(report, separators=(",", ":")))

    def _readable(self, wanted: str | None) -> str | None:
        """Whose usage the caller may read: anyone's with the admin key (or none
        configured), its own with a client key."""
        access = self.runtime.access
        if not access.admin.open and access.admin.matches(self.request.headers):
            return wanted
        client = access.keys.identify(self.request.headers) if not access.keys.open else None
        if client is not None:
            if wanted not in (None, client.name):
                raise Forbidden(f"key '{client.name}' may read only its own usage", param="key")
            return client.name
        if access.admin.open:
            return wanted
        raise Unauthorized("send the admin key, or a client key to read its own usage")
