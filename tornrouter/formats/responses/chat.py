"""What a Responses request and a chat-completions request say alike.

Both are OpenAI's, and beside what the canonical model holds they share
request fields no other API has: some under one name (``metadata``,
``store``...), structured output under two (chat's ``response_format`` is the
Responses API's ``text.format``, with the schema one level up, and
``verbosity`` is ``text.verbosity``).  Each format's ``Foreign`` hands these
to an encoder of the other (``carry_request``), so that neither direction
reports lossy what the target can carry.  Fields another format's codec reads
here are its own wire fields, as that codec keeps them in ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Request fields both APIs have, with one name and one meaning.
SAME_NAME = ("metadata", "store", "service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier")


def _same_name(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    carried = {key: extra[key] for key in SAME_NAME if extra.get(key) is not None}
    return carried, {key: value for key, value in extra.items() if key not in carried}


def carried_to_chat(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Responses request's extras: the chat-completions fields they make, and the rest."""
    carried, rest = _same_name(extra)
    text = rest.get("text")
    if isinstance(text, Mapping):
        text = dict(text)
        response_format = _response_format(text.pop("format", None))
        if response_format is not None:
            carried["response_format"] = response_format
        verbosity = text.pop("verbosity", None)
        if verbosity is not None:
            carried["verbosity"] = verbosity
        if text:
            rest["text"] = text
        else:
            del rest["text"]
    return carried, rest


def carried_from_chat(extra: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chat-completions request's extras: the Responses fields they make, and the rest."""
    carried, rest = _same_name(extra)
    text: dict[str, Any] = {}
    response_format = rest.pop("response_format", None)
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        schema = response_format.get("json_schema")
        text["format"] = {"type": kind, **schema} if kind == "json_schema" and isinstance(schema, Mapping) else {"type": kind}
    elif response_format is not None:
        rest["response_format"] = response_format
    verbosity = rest.pop("verbosity", None)
    if verbosity is not None:
        text["verbosity"] = verbosity
    if text:
        carried["text"] = text
    return carried, rest


def _response_format(text_format: Any) -> dict[str, Any] | None:
    """``text.format`` as ``response_format``; None for plain text, the default of both."""
    if not isinstance(text_format, Mapping) or text_format.get("type") == "text":
        return None
    kind = text_format.get("type")
    if kind == "json_schema":
        return {"type": kind, "json_schema": {k: v for k, v in text_format.items() if k != "type"}}
    return {"type": kind}
