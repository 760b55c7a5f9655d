"""Access control and accounting: client keys, limits, budgets, prices, and the
state they keep (in this process, or in a Redis shared by several instances).

::

    keys.py         KeyRing (the config's keys:, hashed, compared in constant time), AdminKey
    control.py      AccessControl: authenticate -> admit -> settle, the on_error policy, usage reports
    prices.py       PriceTable: the default prices overlaid with prices:, cost of a Usage
    state.py        StateBackend and MemoryBackend: sliding windows, slots, caps, usage totals
    redis_state.py  RedisBackend: the same in Redis, admission as one Lua script
"""

from .control import ANONYMOUS, AccessControl, Admission, make_backend
from .keys import AdminKey, ClientKey, KeyRing
from .prices import DEFAULT_PRICES, PriceTable

__all__ = ["ANONYMOUS", "AccessControl", "AdminKey", "Admission", "ClientKey", "DEFAULT_PRICES", "KeyRing", "PriceTable", "make_backend"]
