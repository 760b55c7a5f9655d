"""``ModelCatalogue``: the model names a client can ask for, in the list shape
of either API (``GET /v1/models`` and ``GET /v1/models/{id}``).

The names are fixed by the config (``ModelRouter.model_names``), so the
catalogue is built once per runtime and the OpenAI list, which has no
parameters, is rendered once.  Anthropic's list is paginated by cursor, as its
API reference says:

- ``limit`` items per page (default 20, 1 to 1000);
- ``after_id=X``: the page immediately after ``X``; ``before_id=X``: the page
  immediately before it (the ``limit`` items that precede ``X``);
- ``has_more``: whether more items lie beyond the page *in the direction asked*
  (after it, or, with ``before_id``, before it); ``first_id`` and ``last_id``
  are the page's ends, for the next cursor (the SDK pages forward with
  ``after_id=last_id``, backward with ``before_id=first_id``).

The router knows no release dates: ``created_at`` is the epoch, which is what
Anthropic's reference says to send when the date is unknown, and the list is
in config order.  A cursor naming no listed model, or both cursors at once, is
a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import InvalidRequest, NotFound

EPOCH_RFC3339 = "1970-01-01T00:00:00Z"
OPENAI_EPOCH = 0
ANTHROPIC_DEFAULT_LIMIT = 20
ANTHROPIC_MAX_LIMIT = 1000


class ModelCatalogue:
    """``names``: (model, provider that serves it) in config order, no duplicates."""

    def __init__(self, names: list[tuple[str, str]]) -> None:
        self.names = list(names)
        self._index = {model: i for i, (model, _) in enumerate(self.names)}
        self.openai_list_json = orjson.dumps({"object": "list", "data": [_openai_model(m, p) for m, p in self.names]})

    def __contains__(self, model: str) -> bool:
        return model in self._index

    # --- OpenAI ---------------------------------------------------------------

    def openai_model(self, model: str) -> dict[str, Any]:
        """One model, as OpenAI's ``GET /v1/models/{model}`` answers."""
        return _openai_model(model, self.names[self._position(model, "invalid_request_error")][1])

    # --- Anthropic ------------------------------------------------------------

    def anthropic_model(self, model: str) -> dict[str, Any]:
        """One model, as Anthropic's ``GET /v1/models/{model_id}`` answers."""
        self._position(model, "not_found_error")
        return _anthropic_model(model)

    def anthropic_page(self, limit: str | None = None, after_id: str | None = None,
                       before_id: str | None = None) -> dict[str, Any]:
        """One page of Anthropic's list, from the query parameters as sent."""
        size = _limit(limit)
        if after_id is not None and before_id is not None:
            raise InvalidRequest("before_id", "give either after_id or before_id, not both")
        if before_id is not None:
            end = self._cursor(before_id, "before_id")
            start = max(0, end - size)
            has_more = start > 0
        else:
            start = self._cursor(after_id, "after_id") + 1 if after_id is not None else 0
            end = min(len(self.names), start + size)
            has_more = end < len(self.names)
        page = [_anthropic_model(model) for model, _ in self.names[start:end]]
        return {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    # --- lookups --------------------------------------------------------------

    def _position(self, model: str, error_type: str) -> int:
        position = self._index.get(model)
        if position is None:
            raise NotFound(f"model '{model}' is not served by this router", param="model",
                           code="model_not_found", error_type=error_type)
        return position

    def _cursor(self, model: str, param: str) -> int:
        position = self._index.get(model)
        if position is None:
            raise InvalidRequest(param, f"'{model}' is not a listed model")
        return position


def _limit(raw: str | None) -> int:
    if raw is None:
        return ANTHROPIC_DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest("limit", f"expected an integer, got '{raw}'") from None
    if not 1 <= limit <= ANTHROPIC_MAX_LIMIT:
        raise InvalidRequest("limit", f"must be between 1 and {ANTHROPIC_MAX_LIMIT}, got {limit}")
    return limit


def _openai_model(model: str, provider: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": OPENAI_EPOCH, "owned_by": provider}


def _anthropic_model(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": EPOCH_RFC3339}
