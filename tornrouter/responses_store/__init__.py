"""Stored responses of the Responses API: what lets a client continue a
conversation with ``previous_response_id`` instead of sending it all again,
and read or delete a response later.

Unless a request says ``store: false``, the router keeps, per response: the
response object as the client got it (its ``output`` items included), the
request's own input items (Responses wire JSON, as sent), the id of the
response it continued and the name of the client key that created it.  A
response is its key's: another key (or a client without one, when keys are
configured) gets not-found, exactly as for an id that never existed.  It is
kept ``responses.store_ttl_s`` after it was saved; each new turn of a
conversation renews the whole conversation, so a conversation in use never
loses its beginning.  Where: ``state.backend``'s place.  ``memory`` keeps them
in this process, at most ``responses.max_bytes`` (least recently used dropped
first): a conversation continues only on the instance (or ``--processes``
worker) that holds it.  ``redis`` keeps them in the Redis of ``state.url``,
where every instance can continue any conversation; with Redis unreachable,
every call fails with ``StateUnavailable`` (503) and the outage is logged once.

The ``POST /v1/responses`` handler (``handlers.responses``) makes two calls,
with ``store = runtime.responses`` and the caller's key name (None on an open
router)::

    # before the request is decoded (handlers.responses.parse)
    own_input = as_input_items(body.get("input"))
    if body.get("previous_response_id"):
        # 400 previous_response_not_found (another key's, expired, deleted), 503 Redis down
        body["input"] = await store.load(body["previous_response_id"], key_name) + own_input
    ...                                            # decode, admit, run the pipeline
    # just before the client gets the answer (a stream's final response event)
    await store.save(response_json, own_input, key_name, previous_response_id=...)

``response_json`` is the response object the client receives; ``save`` keeps
nothing when its ``store`` is false.  ``own_input`` is the request's own
items, never the history ``load`` added (that is stored already).  A request
with ``store: false`` and no ``previous_response_id`` touches no store.

::

    store.py          ResponsesStore: save, load, get, delete, input_items; ownership; the 503
    items.py          input as a list of items; items as input_items lists them
    records.py        Records (the interface), MemoryRecords (LRU + TTL, bounded in bytes)
    redis_records.py  RedisRecords: one hash per response, chains walked in one Lua script
"""

from __future__ import annotations

from ..config import Config
from .items import as_input_items
from .records import MemoryRecords, Records
from .store import ResponsesStore


def make_responses_store(config: Config) -> ResponsesStore:
    """The store ``config`` asks for; nothing is connected until first used."""
    records: Records
    if config.state.backend == "redis":
        from .redis_records import RedisRecords  # only a Redis setup needs the library

        records = RedisRecords(config.state.url or "", prefix=config.state.prefix, timeout_s=config.state.timeout_s)
    else:
        records = MemoryRecords(config.responses.max_bytes)
    return ResponsesStore(records, config.responses.store_ttl_s)


__all__ = ["ResponsesStore", "as_input_items", "make_responses_store"]
