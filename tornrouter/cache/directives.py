"""What a client asks of the cache for one request, from its headers.

``Cache-Control`` (RFC 9111, section 5.2.1, request directives):

``no-cache``     do not answer from the cache; the fresh answer replaces the entry
``no-store``     neither read nor write the cache
``max-age=N``    an entry older than N seconds is not used (and is refreshed)

Other directives (``no-transform``, ``only-if-cached``, extensions) are ignored,
as a cache may.  ``x-tornrouter-cache-namespace`` partitions the cache: requests
with different namespaces never share an entry.  A value that cannot be read is
a 400 naming the header, not a directive silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidRequest

CACHE_CONTROL = "Cache-Control"
NAMESPACE = "x-tornrouter-cache-namespace"
MAX_NAMESPACE = 128
_NAMESPACE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it is logged and shown


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None
    namespace: str = ""


NONE = Directives()


def read_directives(headers: Mapping[str, str]) -> Directives:
    """The directives of a request's headers (Tornado joins repeated headers
    with commas); ``InvalidRequest`` naming the header for one it cannot read."""
    control = headers.get(CACHE_CONTROL)
    namespace = headers.get(NAMESPACE)
    if control is None and namespace is None:
        return NONE
    no_cache = no_store = False
    max_age: int | None = None
    for part in (control or "").split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            seconds = value.strip().strip('"')
            if not seconds.isascii() or not seconds.isdigit():
                raise InvalidRequest(CACHE_CONTROL, f"max-age must be a whole number of seconds, got {value.strip()!r}")
            max_age = int(seconds) if max_age is None else min(max_age, int(seconds))
    if namespace is not None:
        namespace = namespace.strip()
        if not _NAMESPACE.fullmatch(namespace) or len(namespace) > MAX_NAMESPACE:
            raise InvalidRequest(NAMESPACE, f"expected 1 to {MAX_NAMESPACE} visible ASCII characters, no spaces")
    return Directives(no_cache, no_store, max_age, namespace or "")
