"""A cache entry: the canonical answer, not its wire bytes, so that one entry
serves a client of either API, streamed or not, as a live answer would be.

An entry is a JSON document: the layout's version, when it was stored, which
target answered (provider and model, for the headers and the log of a hit),
what the request lost in translation to that target (``lossy``, reported again
on each hit), and the ``ChatResponse`` with every field (ids, usage, stop
reason, extras), each content block tagged with its class.  It holds nothing
of the upstream request, its headers or its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..canonical import Block, ChatResponse, Image, Opaque, Text, Thinking, ToolCall, ToolResult, Usage
from .key import tagged

ENTRY_VERSION = 1
BLOCKS: dict[str, type] = {cls.__name__: cls for cls in (Text, Image, ToolCall, ToolResult, Thinking, Opaque)}


@dataclass(slots=True)
class Entry:
    response: ChatResponse
    stored_at: float  # seconds since the epoch (instances sharing a Redis need synchronised clocks)
    provider: str
    model: str
    lossy: list[str]


def encode_entry(entry: Entry) -> bytes:
    """``TypeError`` when the answer holds what JSON cannot (it is then not stored)."""
    return orjson.dumps(
        {"v": ENTRY_VERSION, "stored_at": entry.stored_at, "provider": entry.provider, "model": entry.model,
         "lossy": entry.lossy, "response": entry.response},
        default=tagged, option=orjson.OPT_PASSTHROUGH_DATACLASS,
    )


def decode_entry(data: bytes) -> Entry:
    """A fresh ``Entry`` (the caller may change its answer); ``ValueError`` for
    bytes that are not an entry of this version."""
    try:
        doc = orjson.loads(data)
        if doc["v"] != ENTRY_VERSION:
            raise ValueError(f"entry version {doc['v']!r}, expected {ENTRY_VERSION}")
        raw = doc["response"]
        response = ChatResponse(
            id=raw["id"], model=raw["model"], content=[_block(b) for b in raw["content"]],
            stop_reason=raw["stop_reason"], stop_sequence=raw["stop_sequence"], usage=_usage(raw["usage"]),
            source=raw["source"], extra=raw["extra"],
        )
        return Entry(response, float(doc["stored_at"]), doc["provider"], doc["model"], list(doc["lossy"]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a cache entry: {exc!r}") from None


def _block(raw: dict[str, Any]) -> Block:
    cls = BLOCKS[raw.pop("$")]
    if cls is ToolResult:
        raw["content"] = [_block(b) for b in raw["content"]]
    return cls(**raw)


def _usage(raw: dict[str, Any]) -> Usage:
    raw.pop("$", None)
    return Usage(**raw)
