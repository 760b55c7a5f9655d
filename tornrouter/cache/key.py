"""The cache key: one digest of everything that can change an answer.

A key is ``blake2b`` over two parts.  The first names where the request goes
and whose entry it is: the key layout's version, the API the upstream speaks
(the provider's kind), a fingerprint of the provider's settings that shape
the upstream request (``provider_fingerprint``), the model sent, the tenant
(the client key's name, or ``*`` when the rule is ``shared``) and the client's
namespace.  The second is the canonical request (``request_form``): every
field of ``ChatRequest`` but the few that do not reach the upstream as part of
the question, extras included, nested objects tagged with their class.

Stability: both parts are serialised by orjson with sorted keys, so the key
does not depend on the order of the client's JSON keys, its whitespace, or
how it wrote a number (``0.5``, ``0.50`` and ``5e-1`` parse to one float and
serialise as one); ``temperature`` and ``top_p`` are numbers whatever their
form (``0`` and ``0.0`` are one).  Elsewhere an integer and a float of the same
value stay apart, as they reach the upstream differently (``"minimum": 0``
and ``0.0`` in a tool's schema are different prompts).  blake2b over bytes,
unlike Python's ``hash``, is the same in every process and on every machine,
so instances sharing a Redis share entries.

Streamed and non-streamed requests share a key: ``stream`` is left out, and
so are the extras that only shape a stream (OpenAI's ``stream_options``), and
the API's version header (``anthropic-version``: the upstream gets its
provider's own when the client sends none).  A
field added to ``ChatRequest`` later is in the key unless listed in
``NOT_IN_KEY``: leaving one out by mistake would serve a wrong answer, adding
one by mistake only costs hits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from ..canonical import ChatRequest, Format
from ..config import ProviderConfig
from ..formats.base import VERSION_HEADERS

KEY_VERSION = 1
# ChatRequest fields that are not part of the question: the model as the client
# named it (the model sent is in the key), the stream flag (one entry serves
# both), and routing inputs (where the request went is in the key).
NOT_IN_KEY = frozenset({"model", "stream", "tags", "forced_provider"})
REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(ChatRequest) if f.name not in NOT_IN_KEY)
# Extras, per source API, that only shape a stream.
STREAM_ONLY: dict[Format, frozenset[str]] = {"openai": frozenset({"stream_options"})}
NUMBERS = ("temperature", "top_p")
# Provider settings that do not shape the upstream request (or never may be in a
# key: the API key).  Any other setting, one added later included, is fingerprinted.
NOT_IN_FINGERPRINT = frozenset({
    "api_key", "timeout_s", "connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s", "models", "retries",
    "retry_backoff_s", "retry_backoff_max_s", "retry_after_max_s", "breaker", "max_concurrent", "max_queue",
})
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def tagged(obj: Any) -> dict[str, Any]:
    """A dataclass as a dict of its fields plus ``"$"``, its class's name: two
    block types with the same fields still serialise apart.  orjson calls this
    for each dataclass (``OPT_PASSTHROUGH_DATACLASS``); anything else it cannot
    serialise is a ``TypeError``."""
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"cannot serialise {cls.__name__}")
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    out = {name: getattr(obj, name) for name in names}
    out["$"] = cls.__name__
    return out


def request_form(request: ChatRequest) -> bytes:
    """The request's part of the key, as bytes.  ``TypeError`` when a plugin left
    something in it that JSON cannot hold (the request is then not cached)."""
    form = {name: getattr(request, name) for name in REQUEST_FIELDS}
    for name in NUMBERS:
        if form[name] is not None:
            form[name] = float(form[name])
    stream_only = STREAM_ONLY.get(request.source)
    if stream_only is not None and not stream_only.isdisjoint(request.extra):
        form["extra"] = {k: v for k, v in request.extra.items() if k not in stream_only}
    if not VERSION_HEADERS.isdisjoint(request.headers):  # sent or not, the upstream gets its own revision
        form["headers"] = {k: v for k, v in request.headers.items() if k not in VERSION_HEADERS}
    return orjson.dumps(form, default=tagged, option=_OPTIONS)


def provider_fingerprint(config: ProviderConfig) -> str:
    """A digest of the provider settings that shape its upstream requests (its
    URL, kind, headers, default max tokens...), so that a reload that points a
    provider elsewhere does not serve the answers of before."""
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in NOT_IN_FINGERPRINT}
    return hashlib.blake2b(orjson.dumps(settings, default=tagged, option=_OPTIONS), digest_size=16).hexdigest()


def cache_key(form: bytes, *, kind: str, fingerprint: str, model: str, scope: str, namespace: str) -> str:
    """The entry's key: 32 hex digits.  The target part is a JSON array, which
    ends unambiguously where the request's part begins."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(orjson.dumps([KEY_VERSION, kind, fingerprint, model, scope, namespace]))
    digest.update(form)
    return digest.hexdigest()
