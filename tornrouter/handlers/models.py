"""``GET /v1/models`` and ``GET /v1/models/{id}``, in the shape of the API the
client speaks.

Both APIs serve their model list at the same path, so the client is told
apart by a header every Anthropic SDK sends and OpenAI's never do:
``anthropic-version``.  With it, the answer (and any error) is Anthropic's:
the paginated list of ``model_catalogue``; without it, OpenAI's list, which
stays the default.  With ``keys:`` configured, both ask for a client key, as
the API does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import orjson
from tornado.web import RequestHandler

from ..errors import RouterError
from ..formats import codec_for
from .admin import finish_with_error

if TYPE_CHECKING:
    from ..runtime import Runtime

_CODECS = {"openai": codec_for("openai"), "anthropic": codec_for("anthropic")}


class _ModelsBase(RequestHandler):
    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def api(self) -> str:
        return "anthropic" if "anthropic-version" in self.request.headers else "openai"

    def prepare(self) -> None:
        try:
            self.runtime.access.authenticate(self.request.headers)
        except RouterError as error:
            self.fail(error)

    def fail(self, error: RouterError) -> NoReturn:
        finish_with_error(self, error, _CODECS[self.api])

    def answer(self, body: bytes) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class ModelsHandler(_ModelsBase):
    """``GET /v1/models``: every concrete model name a client can ask for
    (``ModelRouter.model_names``): OpenAI's list, or Anthropic's page
    (``limit``, ``after_id``, ``before_id``)."""

    def get(self) -> None:
        catalogue = self.runtime.models
        if self.api == "openai":
            self.answer(catalogue.openai_list_json)
            return
        try:
            page = catalogue.anthropic_page(
                self.get_query_argument("limit", None),
                self.get_query_argument("after_id", None),
                self.get_query_argument("before_id", None),
            )
        except RouterError as error:
            self.fail(error)
        self.answer(orjson.dumps(page))


class ModelHandler(_ModelsBase):
    """``GET /v1/models/{id}``: one listed model (an id may hold ``/``); 404 in
    the client's shape for a name the list does not have."""

    def get(self, model: str) -> None:
        catalogue = self.runtime.models
        try:
            body = catalogue.anthropic_model(model) if self.api == "anthropic" else catalogue.openai_model(model)
        except RouterError as error:
            self.fail(error)
        self.answer(orjson.dumps(body))
