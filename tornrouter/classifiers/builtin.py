"""The built-in classifiers, by config name (see DESIGN.md, Routing)."""

from __future__ import annotations

import re
from fnmatch import translate
from typing import Any

from marshmallow import fields, validate

from ..canonical import ChatRequest, Image, Message, Thinking, ToolResult
from ..patterns import Patterns
from .base import ClassifierSettings, TagIf

CHARS_PER_TOKEN = 4  # the usual rough estimate for English text and code


def estimate_input_tokens(request: ChatRequest) -> int:
    """A cheap upper-bound-ish token estimate: characters / 4, images ignored."""
    chars = sum(len(b.text) for b in request.system)
    for message in request.messages:
        chars += _message_chars(message)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(str(tool.parameters or ""))
    return chars // CHARS_PER_TOKEN


def _message_chars(message: Message) -> int:
    total = 0
    for block in message.content:
        text = getattr(block, "text", None)
        if text is not None:
            total += len(text)
        elif isinstance(block, ToolResult):
            total += sum(len(getattr(b, "text", "")) for b in block.content)
        elif isinstance(block, Thinking):
            total += len(block.thinking)
        else:
            total += len(str(getattr(block, "input", "")))
    return total


class LongContext(TagIf):
    """``long_context`` when the estimated input exceeds ``threshold_tokens``."""

    default_tag = "long_context"

    class Settings(ClassifierSettings):
        threshold_tokens = fields.Integer(load_default=60000, validate=validate.Range(min=1))

    def matches(self, request: ChatRequest) -> bool:
        return estimate_input_tokens(request) > self.settings["threshold_tokens"]


class Images(TagIf):
    """``images`` when any message (or tool result) carries an image."""

    default_tag = "images"

    def matches(self, request: ChatRequest) -> bool:
        for message in request.messages:
            for block in message.content:
                if isinstance(block, Image):
                    return True
                if isinstance(block, ToolResult) and any(isinstance(b, Image) for b in block.content):
                    return True
        return False


class Tools(TagIf):
    """``tools`` when the client offers tools."""

    default_tag = "tools"

    def matches(self, request: ChatRequest) -> bool:
        return bool(request.tools)


class ThinkingRequested(TagIf):
    """``thinking`` when the client asks for reasoning (``ChatRequest.reasoning``):
    Anthropic ``thinking`` enabled or adaptive, OpenAI ``reasoning_effort`` above ``minimal``."""

    default_tag = "thinking"

    def matches(self, request: ChatRequest) -> bool:
        reasoning = request.reasoning
        # ``minimal`` effort is barely reasoning: not worth a thinking model's route
        return reasoning is not None and reasoning.mode != "disabled" and reasoning.effort != "minimal"


class Background(TagIf):
    """``background`` when the requested model matches the glob ``model``
    (claude-code sends its background chores to a haiku model)."""

    default_tag = "background"

    class Settings(ClassifierSettings):
        model = fields.String(required=True)

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self._pattern = re.compile(translate(settings["model"]))

    def matches(self, request: ChatRequest) -> bool:
        return self._pattern.match(request.model) is not None


class WebSearch(TagIf):
    """``web_search`` when a web-search tool is offered (Anthropic server tool
    ``web_search_*``, a Responses ``web_search`` tool, OpenAI
    ``web_search_options``, or a function named so)."""

    default_tag = "web_search"

    def matches(self, request: ChatRequest) -> bool:
        if request.web_search is not None:
            return True
        return any(tool.web_search or tool.name in ("web_search", "websearch") for tool in request.tools)


class Keyword(TagIf):
    """The tag named by ``tag`` when the last user message matches one of ``patterns``."""

    class Settings(ClassifierSettings):
        tag = fields.String(required=True)
        patterns = Patterns(required=True)

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self._patterns = settings["patterns"]

    @property
    def name(self) -> str:
        return "keyword"

    def matches(self, request: ChatRequest) -> bool:
        return self._patterns.search(request.last_user_text())


BUILTIN = {
    "long_context": LongContext,
    "images": Images,
    "tools": Tools,
    "thinking": ThinkingRequested,
    "background": Background,
    "web_search": WebSearch,
    "keyword": Keyword,
}
