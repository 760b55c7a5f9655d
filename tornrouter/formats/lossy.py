"""What an encoding keeps of the canonical objects' ``extra``, and what it reports lost.

One rule for every encoder, request, response and stream, of either API: an
object's ``extra`` (the fields of its *source* format the canonical model does
not name) is written back when the target is that format, named lossy when it
is the other, and ignored when there is no source (an answer a plugin made).
None and False carry nothing and are never reported.

How a format's ``extra`` is named when lost is that format's own business, since
only its codec knows what it put there: each format describes its extras with a
``formats.base.Foreign`` (``FOREIGN`` in its ``shapes`` module), and an encoder
for the other format asks it rather than reading the extras itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..canonical import Block, Format, Opaque, Thinking, ToolCall
from .anthropic.shapes import FOREIGN as ANTHROPIC
from .base import Foreign
from .converse.shapes import FOREIGN as CONVERSE
from .gemini.shapes import FOREIGN as GEMINI
from .openai.shapes import FOREIGN as OPENAI
from .responses.shapes import FOREIGN as RESPONSES

_FOREIGN: Mapping[Format, Foreign] = {"openai": OPENAI, "anthropic": ANTHROPIC, "responses": RESPONSES,
                                   "gemini": GEMINI,
                                   "converse": CONVERSE}


class Carry:
    """The extras of one encoding: kept, or reported in ``lossy``.

    ``target`` is the format being written, ``source`` the one the canonical
    objects came from; ``foreign`` describes the source's extras when they are lost.
    """

    __slots__ = ("keep", "lossy", "foreign")
    target: Format  # set by each subclass

    def __init__(self, source: Format | None) -> None:
        self.keep = source == self.target
        # Set when the extras are to be reported: they came from the other format.
        self.foreign = None if self.keep or source is None else _FOREIGN[source]
        self.lossy: dict[str, None] = {}  # an ordered set of what could not be carried

    def lose(self, name: str) -> None:
        self.lossy[name] = None

    def lose_all(self, names: Iterable[str]) -> None:
        for name in names:
            self.lossy[name] = None

    def unplaced(self, block: Block) -> dict[str, Any] | None:
        """A block the target has no place of its own for: one of the target's
        own kept as it came (``Opaque``), anything else lost."""
        if isinstance(block, Opaque) and block.format == self.target:
            return block.data
        if isinstance(block, Thinking):
            self.lose("thinking")
            self.extra({}, block.extra, "thinking.")
        else:
            self.lose(f"content.{block.data.get('type') if isinstance(block, Opaque) else block.type}")
        return None

    def tool_input(self, block: ToolCall) -> dict[str, Any]:
        """A tool call's arguments for an API whose ``input`` must be an object
        (Anthropic's, Bedrock's): arguments that were not one are wrapped, and lossy."""
        if block.raw_arguments is None:
            return block.input
        try:
            parsed = json.loads(block.raw_arguments)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        self.lose("tool_call.arguments")
        return {"arguments": block.raw_arguments}

    def extra(
        self, out: dict[str, Any], extra: Mapping[str, Any], prefix: str, skip: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """``out`` with ``extra`` written back where ``out`` lacks the field
        (``skip``: fields of the format's own that are not ``out``'s), or the
        names of ``extra``'s fields noted lossy."""
        if self.keep:
            for key, value in extra.items():
                if key not in skip:
                    out.setdefault(key, value)
        elif self.foreign is not None and extra:
            self.lose_all(self.foreign.names(extra, prefix))
        return out
