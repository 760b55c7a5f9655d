"""How a mirror's answer compares with the primary's: the ``compare`` of a
mirror record.

Four questions an operator trying a candidate model asks of each pair: is the
text the same, how close is it (``difflib``'s ratio, over the first
``SIMILARITY_CHARS`` of each: the ratio is quadratic in the worst case, and
it runs on the event loop), are the same tools called with the same
arguments (in any order: parallel calls come in no set order), and did both
stop for the same reason.  A mirror that gave no answer has nothing to
compare (its record's ``compare`` is null, its ``error`` says why), so that a
summary of the comparisons is one of answers, not of outages.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import orjson

from ..canonical import ChatResponse, ToolCall

SIMILARITY_CHARS = 2000


def compare(primary: ChatResponse, mirror: ChatResponse) -> dict[str, Any]:
    a, b = primary.text(), mirror.text()
    return {
        "exact": a == b,
        "similarity": similarity(a, b),
        "same_tool_calls": tool_calls(primary) == tool_calls(mirror),
        "same_stop_reason": primary.stop_reason == mirror.stop_reason,
    }


def similarity(a: str, b: str) -> float:
    """0 (nothing alike) to 1 (the same), rounded to four places; two empty texts are alike."""
    return round(SequenceMatcher(None, a[:SIMILARITY_CHARS], b[:SIMILARITY_CHARS]).ratio(), 4)


def tool_calls(response: ChatResponse) -> list[tuple[str, str]]:
    """The calls as (name, arguments as canonical JSON), sorted: ids differ
    between upstreams and say nothing of what was asked."""
    calls = []
    for block in response.content:
        if isinstance(block, ToolCall):
            arguments: Any = block.input
            if block.raw_arguments is not None:  # not a JSON object: compared as the text it was
                arguments = block.raw_arguments
            calls.append((block.name, orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()))
    return sorted(calls)
