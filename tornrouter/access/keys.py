"""Who is calling: the client keys of the config, and the admin key.

Clients send a key the way their SDK does: OpenAI's as ``Authorization: Bearer
<key>``, Anthropic's as ``x-api-key: <key>`` (or ``Authorization: Bearer`` with
``auth_token``).  Both headers are accepted on every endpoint, so either SDK
can talk to any endpoint.

Only SHA-256 digests are held (a config may give ``key_sha256`` and never hold
the key at all).  A presented key is hashed once and compared with *every*
configured digest by ``hmac.compare_digest``, without stopping at a match, so
the time an answer takes does not tell how much of which key was right.
Nothing here logs a key; a caller is known by its key's ``name``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from fnmatch import translate

from ..config import KeyConfig


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request carries: the ``x-api-key`` header and the Bearer token."""
    found = []
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found.append(token.strip())
    return found


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ClientKey:
    """A configured key, as the admission logic sees it: name, models, limits."""

    def __init__(self, config: KeyConfig) -> None:
        self.config = config
        self.name = config.name
        self._models = re.compile("|".join(f"(?:{translate(glob)})" for glob in config.models))

    def may_use(self, model: str) -> bool:
        """Does one of the key's ``models`` globs match the requested model?
        (The name as the client sent it, ``provider,model`` included.)"""
        return self._models.match(model) is not None


class KeyRing:
    """The ``keys:`` of the config.  Empty: the router is open to anyone."""

    def __init__(self, keys: Iterable[KeyConfig]) -> None:
        self.keys = [ClientKey(k) for k in keys]

    @property
    def open(self) -> bool:
        return not self.keys

    def identify(self, headers: Mapping[str, str]) -> ClientKey | None:
        """The key a request presents, or None when it presents none of ours."""
        found = None
        for presented in presented_keys(headers):
            candidate = digest(presented)
            for key in self.keys:  # every one, no early exit: constant time over the ring
                if hmac.compare_digest(candidate, key.config.sha256) and found is None:
                    found = key
        return found


class AdminKey:
    """``server.admin_key``: what the dashboard, ``/metrics`` and ``/v1/usage``
    (for all keys) ask for.  Unset: those are open, as before keys existed."""

    def __init__(self, key: str | None) -> None:
        self._digest = digest(key) if key else None

    @property
    def open(self) -> bool:
        return self._digest is None

    def matches(self, headers: Mapping[str, str], query_key: str | None = None) -> bool:
        """Is the admin key in the headers (Bearer or ``x-api-key``) or, for
        EventSource and pages, which cannot set headers, in ``?key=``?"""
        if self._digest is None:
            return True
        candidates = presented_keys(headers) + ([query_key] if query_key else [])
        ok = False
        for presented in candidates:
            ok |= hmac.compare_digest(digest(presented), self._digest)
        return ok
