"""The response cache: exact-match answers, in memory or in Redis, correct first.

::

    control.py      ResponseCache (lookup after routing, store before PostResponse,
                    the rules, the outage policy) and CacheTicket (one request's outcome)
    key.py          the key: the target and the whole canonical request, stably serialised
    entry.py        an entry: the canonical answer and where it came from, as JSON
    directives.py   Cache-Control and x-tornrouter-cache-namespace
    flight.py       single flight: identical requests in flight at once, one upstream call
    store.py        CacheStore and MemoryStore, an LRU bounded in bytes
    redis_store.py  RedisStore: compressed entries with Redis's expiry, shared by instances

Off unless a route (``cache:``) or a model glob (``cache.models``) enables it.
"""

from .control import CacheTicket, ResponseCache

__all__ = ["CacheTicket", "ResponseCache"]
