"""``ResponsesStore``: stored responses and their conversations, owned by the
client key that created them (see the package docstring for the contract)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson

from ..access.control import Outage
from ..access.state import BackendUnavailable
from ..errors import InvalidRequest, NotFound, PreviousResponseNotFound, RouterError, StateUnavailable
from .items import listed
from .records import KEPT, MAX_CHAIN, TAKEN, TOO_LARGE, Chain, Record, Records

log = logging.getLogger("tornrouter")
T = TypeVar("T")
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
ORDERS = ("asc", "desc")


class ResponsesStore:
    def __init__(self, records: Records, ttl_s: float) -> None:
        self.records = records
        self.ttl_s = ttl_s
        self.outage = Outage(records.where, "stored responses answer 503; new ones are not kept")

    # --- the POST /v1/responses handler's two calls ------------------------------

    async def save(self, response: dict[str, Any], input_items: list[Any], key_name: str | None, *,
                   previous_response_id: str | None = None) -> bool:
        """Keep a finished response (the ``response`` object as the client got
        it, its ``output`` included) with the request's own ``input_items``
        (not the history a ``previous_response_id`` brought in), as the
        continuation of ``previous_response_id`` (by default the one the
        response names).  Nothing is kept when the response says ``store:
        false``.  Returns whether it was kept; a response that is not (larger
        than ``responses.max_bytes``, or an id already stored: an upstream
        that repeats its ids) is logged."""
        if response.get("store") is False:
            return False
        prev = previous_response_id or response.get("previous_response_id") or ""
        if prev and response.get("previous_response_id") != prev:
            response = {**response, "previous_response_id": prev}  # what it continued, as GET shows it
        record = Record(
            id=response["id"],
            key=key_name or "",
            prev=prev,
            data=orjson.dumps({"response": response, "input": input_items}),
        )
        outcome = TAKEN if record.id == prev else await self._call(self.records.put(record, self.ttl_s))
        if outcome == TAKEN:
            log.warning("response '%s' not stored: that id is stored already (does the upstream repeat its ids?)", record.id)
        elif outcome == TOO_LARGE:
            log.warning("response '%s' not stored: %d bytes, more than responses.max_bytes", record.id, len(record.data))
        return outcome == KEPT

    async def load(self, response_id: str, key_name: str | None) -> list[Any]:
        """The conversation that ``response_id`` ended, oldest first: for each
        of its responses, back to the first, the input items then the output
        items.  ``PreviousResponseNotFound`` (400, for the request naming it
        as ``previous_response_id``) when it, or a response before it, is not
        stored for this key."""
        chain = await self._chain(response_id, key_name, PreviousResponseNotFound)
        return _conversation(chain, with_last_output=True)

    # --- GET, DELETE /v1/responses/{id}, GET .../input_items ---------------------

    async def get(self, response_id: str, key_name: str | None) -> dict[str, Any]:
        """The response object as it was answered; ``NotFound`` (404)."""
        record = await self._call(self.records.get(response_id))
        if record is None or record.key != (key_name or ""):
            raise _not_found(_gone(response_id))
        return orjson.loads(record.data)["response"]

    async def delete(self, response_id: str, key_name: str | None) -> dict[str, Any]:
        """Delete it (the responses that continued it can then no longer be
        continued nor listed); ``NotFound`` (404)."""
        if not await self._call(self.records.delete(response_id, key_name or "")):
            raise _not_found(_gone(response_id))
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(self, response_id: str, key_name: str | None, *, limit: int = LIST_DEFAULT_LIMIT,
                          order: str = "desc", after: str | None = None) -> dict[str, Any]:
        """The items the response was generated from (the conversation before it
        and its own input), as the API lists them: a page of ``limit`` (1 to
        100), newest first unless ``order`` is ``asc``, after the item ``after``."""
        if not 1 <= limit <= LIST_MAX_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {LIST_MAX_LIMIT}, got {limit}")
        if order not in ORDERS:
            raise InvalidRequest("order", f"expected one of {', '.join(ORDERS)}, got '{order}'")
        chain = await self._chain(response_id, key_name, _not_found)
        items = _conversation(chain, with_last_output=False, listing=True)
        if order == "desc":
            items.reverse()
        start = 0
        if after is not None:
            ids = [item.get("id") if isinstance(item, dict) else None for item in items]
            if after not in ids:
                raise InvalidRequest("after", f"'{after}' is not an input item of response '{response_id}'")
            start = ids.index(after) + 1
        page = items[start:start + limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": start + limit < len(items),
        }

    async def aclose(self) -> None:
        await self.records.aclose()

    # --- the store's reads, and its one failure ---------------------------------------

    async def _chain(self, response_id: str, key_name: str | None, not_found: Callable[[str], RouterError]) -> Chain:
        """The whole chain of ``response_id``, every link this key's; else
        ``not_found(why)``.  Another key's response is not found, as if it did
        not exist: its id tells nothing to whoever does not own it."""
        chain = await self._call(self.records.chain(response_id))
        owner = key_name or ""
        if not chain.records or chain.records[0].key != owner:
            raise not_found(_gone(response_id))
        if chain.too_long:
            raise InvalidRequest(None, f"the conversation of '{response_id}' is longer than {MAX_CHAIN} responses")
        foreign = [record.id for record in chain.records if record.key != owner]
        if chain.missing or foreign:
            earlier = chain.missing or foreign[0]
            raise not_found(f"response '{response_id}' continues a conversation whose response '{earlier}' "
                            "is no longer stored (expired or deleted)")
        return chain

    async def _call(self, call: Coroutine[Any, Any, T]) -> T:
        """Redis down: a 503 saying so, at once for a second after a failure
        (``Outage``), and the outage logged once, when it starts and ends."""
        if not self.outage.worth_trying():
            call.close()
            raise _unavailable()
        try:
            result = await call
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            raise _unavailable() from exc
        self.outage.succeeded()
        return result


def _conversation(chain: Chain, *, with_last_output: bool, listing: bool = False) -> list[Any]:
    """The items of a chain (newest first) oldest first: input, then output."""
    items: list[Any] = []
    for index, record in enumerate(reversed(chain.records)):
        stored = orjson.loads(record.data)
        inputs = stored["input"]
        items += [listed(item, record.id, n) for n, item in enumerate(inputs)] if listing else inputs
        if with_last_output or index < len(chain.records) - 1:
            items += stored["response"].get("output") or []
    return items


def _gone(response_id: str) -> str:
    return f"no stored response '{response_id}' (never stored, expired or deleted)"


def _not_found(message: str) -> NotFound:
    return NotFound(message, param="response_id")


def _unavailable() -> StateUnavailable:
    return StateUnavailable("stored responses cannot be reached right now (state backend unreachable); retry shortly")
