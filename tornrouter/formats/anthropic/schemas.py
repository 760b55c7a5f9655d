"""Marshmallow schemas of the Anthropic Messages request body.

They only validate: once a body passes, the codec decodes the raw dict, so no
field may coerce (``"5"`` -> 5) -- what passes is relayed as sent.  Every level
INCLUDEs unknown fields because the API gains new ones every few weeks and a
gateway must relay what it does not know yet; for the same reason a content
block, tool or image source of an unknown ``type`` passes unchecked.

Reference: the ``anthropic`` SDK's ``types/message_create_params.py`` and the
``*_param.py`` types it imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..accepts import Predicate, schema_accepts
from ..fields import Content, StrictBool, StrictFloat, Tagged, Wire, first_problem

# Newer models take a ``system`` turn right after a user turn (``SystemMessageParam``
# in the SDK); the codec relays it same-format and folds it into ``system`` otherwise.
ROLES = ("user", "assistant", "system")


def _open(schemas: Mapping[str, Schema], **kwargs: Any) -> Tagged:
    """An object checked by the schema its ``type`` names; another type passes as it is."""
    return Tagged(schemas, unknown=None, **kwargs)


def _content(blocks: Mapping[str, Schema], **kwargs: Any) -> Content:
    return Content(blocks, noun="content blocks", unknown=None, **kwargs)


class _Each(fields.Field):
    """A list of objects, each valid for ``schema``."""

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        errors = {}
        for index, item in enumerate(value):
            problem = first_problem(self.schema, item) if isinstance(item, dict) else ["Must be an object."]
            if problem:
                errors[index] = problem
        if errors:
            raise ValidationError(errors)
        return value

    def value_check(self) -> Predicate:
        accepts = schema_accepts(self.schema)
        return lambda v: isinstance(v, list) and all(isinstance(item, dict) and accepts(item) for item in v)


# --- content blocks -------------------------------------------------------------


class _TextBlock(Wire):
    text = fields.String(required=True)


class _Base64Source(Wire):
    media_type = fields.String(required=True)
    data = fields.String(required=True)


class _UrlSource(Wire):
    url = fields.String(required=True)


class _ImageBlock(Wire):
    source = _open({"base64": _Base64Source(), "url": _UrlSource()}, required=True)


class _DocumentBlock(Wire):
    source = fields.Dict(required=True)


class _ToolUseBlock(Wire):
    id = fields.String(required=True)
    name = fields.String(required=True)
    input = fields.Dict(required=True)


_TOOL_RESULT_CONTENT = {"text": _TextBlock(), "image": _ImageBlock(), "document": _DocumentBlock()}


class _ToolResultBlock(Wire):
    tool_use_id = fields.String(required=True)
    content = _content(_TOOL_RESULT_CONTENT, allow_none=True)
    is_error = StrictBool(allow_none=True)


class _ThinkingBlock(Wire):
    thinking = fields.String(required=True)
    signature = fields.String(required=True)


class _RedactedThinkingBlock(Wire):
    data = fields.String(required=True)


class _ServerToolResultBlock(Wire):
    tool_use_id = fields.String(required=True)
    content = fields.Raw(required=True)


_BLOCKS = {
    "text": _TextBlock(),
    "image": _ImageBlock(),
    "document": _DocumentBlock(),
    "tool_use": _ToolUseBlock(),
    "tool_result": _ToolResultBlock(),
    "thinking": _ThinkingBlock(),
    "redacted_thinking": _RedactedThinkingBlock(),
    "server_tool_use": _ToolUseBlock(),
    "web_search_tool_result": _ServerToolResultBlock(),
}


class _MessageParam(Wire):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = _content(_BLOCKS, required=True)


# --- tools, tool choice, thinking ---------------------------------------------------


class _CustomTool(Wire):
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(allow_none=True)
    input_schema = fields.Dict(required=True)


class _ToolChoiceAuto(Wire):
    disable_parallel_tool_use = StrictBool()


class _ToolChoiceTool(_ToolChoiceAuto):
    name = fields.String(required=True)


class _ThinkingEnabled(Wire):
    budget_tokens = fields.Integer(required=True, strict=True, validate=validate.Range(min=1024))


class _Metadata(Wire):
    user_id = fields.String(allow_none=True)


def _system_turns_follow_user_turns(messages: list[dict[str, Any]]) -> None:
    for index, message in enumerate(messages):
        if message["role"] == "system" and (index == 0 or messages[index - 1]["role"] != "user"):
            problem = "A system turn may only follow a user turn; use the top-level 'system' field."
            raise ValidationError({index: {"role": [problem]}})


class MessagesRequest(Wire):
    """``POST /v1/messages``.  ``max_tokens`` 0 is valid: it pre-warms the prompt cache."""

    model = fields.String(required=True, validate=validate.Length(min=1))
    max_tokens = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    messages = _Each(_MessageParam(), required=True, validate=[validate.Length(min=1), _system_turns_follow_user_turns])
    system = Content({"text": _TextBlock()}, noun="content blocks", allow_none=True)
    stop_sequences = fields.List(fields.String(), allow_none=True)
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    top_k = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0))
    stream = StrictBool(allow_none=True)
    metadata = fields.Nested(_Metadata, allow_none=True)
    tools = fields.List(_open({"custom": _CustomTool()}, default="custom"), allow_none=True)
    tool_choice = Tagged(
        {"auto": _ToolChoiceAuto(), "any": _ToolChoiceAuto(), "tool": _ToolChoiceTool(), "none": Wire()},
        allow_none=True,
    )
    thinking = _open({"enabled": _ThinkingEnabled()}, allow_none=True)
    service_tier = fields.String(allow_none=True)


REQUEST_SCHEMA = MessagesRequest()
