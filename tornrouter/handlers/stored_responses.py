"""The stored responses of the Responses API, read and deleted
(``tornrouter.responses_store``):

``GET /v1/responses/{id}``               the response object, as it was answered
``DELETE /v1/responses/{id}``            ``{"id", "object": "response", "deleted": true}``
``GET /v1/responses/{id}/input_items``   the items it was generated from, a page at a time
                                         (``limit`` 1-100, default 20; ``order`` asc|desc,
                                         default desc; ``after`` an item id)

Each asks for a client key when ``keys:`` are configured, and answers only
with the caller's own responses: another key's is a 404, in OpenAI's error
shape like every error here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from tornado.web import RequestHandler

from ..access import ClientKey
from ..errors import InvalidRequest, RouterError
from ..formats import codec_for
from .base import as_router_error

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("tornrouter")
_OPENAI = codec_for("openai")


class KeyedJSONHandler(RequestHandler):
    """A JSON endpoint beside the Responses API: the caller's key is known
    (``client_key``, ``key_name``; 401 before anything else) and every error is
    answered in OpenAI's shape."""

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client_key: ClientKey | None = None
        self.key_name: str | None = None

    def prepare(self) -> None:
        self.client_key = self.runtime.access.authenticate(self.request.headers)  # 401 before anything is read
        self.key_name = self.client_key.name if self.client_key is not None else None

    def answer(self, body: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = as_router_error(status_code, kwargs.get("exc_info"))
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="tornrouter"')
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(_OPENAI.error_body(error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, RouterError):  # answered as it should be: no traceback
            log.info("%s %s: %s %s", self.request.method, self.request.path, value.status, value.message)
        else:
            super().log_exception(typ, value, tb)


class StoredResponseHandler(KeyedJSONHandler):
    async def get(self, response_id: str) -> None:
        if self.get_query_argument("stream", "false").lower() not in ("false", "0"):
            raise InvalidRequest("stream", "only a background response can be streamed again, and the router runs none")
        self.answer(await self.runtime.responses.get(response_id, self.key_name))

    async def delete(self, response_id: str) -> None:
        self.answer(await self.runtime.responses.delete(response_id, self.key_name))


class InputItemsHandler(KeyedJSONHandler):
    async def get(self, response_id: str) -> None:
        raw_limit = self.get_query_argument("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise InvalidRequest("limit", f"expected an integer, got '{raw_limit}'") from None
        page = await self.runtime.responses.input_items(
            response_id, self.key_name, limit=limit,
            order=self.get_query_argument("order", "desc"), after=self.get_query_argument("after", None),
        )
        self.answer(page)
