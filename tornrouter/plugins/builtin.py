"""Built-in plugins, by config name."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from ..canonical import Text, ToolResult
from ..context import PluginContext
from ..patterns import Patterns
from .base import BasePlugin, Flow


class Redact(BasePlugin):
    """Replaces every match of ``patterns`` (regexes) in the user's text with
    ``replacement`` before the request leaves the router (card numbers, keys)."""

    id = "redact"

    class Settings(Schema):
        class Meta:
            unknown = RAISE

        patterns = Patterns(required=True)
        replacement = fields.String(load_default="[REDACTED]")

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self._patterns = settings["patterns"]
        self._replacement = settings["replacement"]

    async def pre_request(self, ctx: PluginContext) -> Flow:
        changed = False
        for message in ctx.request.messages:
            if message.role != "user":
                continue
            for block in message.content:
                for text in _texts(block):
                    redacted = self._patterns.sub(self._replacement, text.text)
                    if redacted != text.text:
                        text.text = redacted
                        changed = True
        return Flow.MODIFIED if changed else Flow.CONTINUE


def _texts(block: Any) -> list[Text]:
    if isinstance(block, Text):
        return [block]
    if isinstance(block, ToolResult):
        return [b for b in block.content if isinstance(b, Text)]
    return []


class SystemPrompt(BasePlugin):
    """Adds ``text`` to the system prompt (``position``: ``prepend`` or ``append``),
    e.g. a house policy every model must see."""

    id = "system_prompt"

    class Settings(Schema):
        class Meta:
            unknown = RAISE

        text = fields.String(required=True)
        position = fields.String(load_default="append", validate=validate.OneOf(("prepend", "append")))

    async def pre_request(self, ctx: PluginContext) -> Flow:
        block = Text(self.settings["text"])
        if self.settings["position"] == "prepend":
            ctx.request.system.insert(0, block)
        else:
            ctx.request.system.append(block)
        return Flow.MODIFIED


BUILTIN = {"redact": Redact, "system_prompt": SystemPrompt}
