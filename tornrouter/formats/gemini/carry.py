"""The request fields of the client APIs that Gemini's ``generationConfig`` has
too: each client format's ``Foreign.carry_request`` calls these for a Gemini
upstream, so that only the source format's code reads its extras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SAME = (("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))
_JSON = "application/json"


def from_chat(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Chat-completions extras: the ``generationConfig`` fields they make (JSON
    output from ``response_format``, the seed and penalties), and the rest."""
    rest = dict(extra)
    out: dict[str, Any] = {}
    response_format = rest.pop("response_format", None)
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind in ("json_object", "json_schema"):
        out["responseMimeType"] = _JSON
        schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        if schema is not None:
            out["responseJsonSchema"] = schema
    elif response_format is not None and kind != "text":
        rest["response_format"] = response_format
    for chat, gemini in _SAME:
        value = rest.pop(chat, None)
        if value is not None:
            out[gemini] = value
    return out, rest


def from_anthropic(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Anthropic extras: ``top_k`` as ``topK``, and the rest."""
    rest = dict(extra)
    top_k = rest.pop("top_k", None)
    return ({"topK": top_k} if top_k is not None else {}), rest
