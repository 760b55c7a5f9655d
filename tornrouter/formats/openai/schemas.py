"""Marshmallow schemas of the OpenAI chat-completions request body.

They only validate: once a body passes, the codec decodes the raw dict, so no
field may coerce (``"0.5"`` -> 0.5) -- what passes is relayed as sent.  Every
level INCLUDEs unknown fields, because the API gains new ones every few weeks
and a gateway must relay what it does not know yet.  Roles and content-part
types are closed sets: OpenAI refuses unknown ones too, and the canonical model
needs to know what each one is.

Reference: the ``openai`` SDK's ``types/chat/completion_create_params.py`` and
the ``chat_completion_*_param.py`` types it imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..accepts import Predicate
from ..fields import Content, Object, StrictBool, StrictFloat, Tagged, ToolChoice, Wire

_UNKNOWN = "'{kind}' is not one of: {choices}."
# Roles the API once had, refused with a pointer to their successor.
_RETIRED_ROLES: Mapping[str, str] = MappingProxyType(
    {"function": "the legacy 'function' role is not supported; send 'tool' messages with a tool_call_id."}
)


def _int(**kwargs: Any) -> fields.Integer:
    """A JSON integer (``1.5`` and ``"1"`` are refused), nullable as the API allows."""
    return fields.Integer(strict=True, allow_none=True, **kwargs)


class _Stop(fields.Field):
    """``stop``: one string or a list of strings."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value)):
            return value
        raise ValidationError("Must be a string or a list of strings.")

    def value_check(self) -> Predicate:
        return lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


def _tagged(schemas: Mapping[str, Schema], **kwargs: Any) -> Tagged:
    """An object of one of ``schemas`` by its ``type`` (or ``key``): the API refuses other types."""
    return Tagged(schemas, unknown=_UNKNOWN, **kwargs)


def _content(parts: Mapping[str, Schema], **kwargs: Any) -> Content:
    return Content(parts, noun="content parts", non_empty=True, unknown=_UNKNOWN, **kwargs)


# --- content parts ----------------------------------------------------------------


class _TextPart(Wire):
    text = fields.String(required=True)


class _RefusalPart(Wire):
    refusal = fields.String(required=True)


class _ImageURL(Wire):
    url = fields.String(required=True)
    detail = fields.String()


class _ImagePart(Wire):
    image_url = Object(_ImageURL(), required=True)


class _InputAudio(Wire):
    data = fields.String(required=True)
    format = fields.String(required=True)


class _AudioPart(Wire):
    input_audio = Object(_InputAudio(), required=True)


class _File(Wire):
    file_data = fields.String()
    file_id = fields.String()
    filename = fields.String()


class _FilePart(Wire):
    file = Object(_File(), required=True)


_TEXT_ONLY = {"text": _TextPart()}
_USER_PARTS = {**_TEXT_ONLY, "image_url": _ImagePart(), "input_audio": _AudioPart(), "file": _FilePart()}
_ASSISTANT_PARTS = {**_TEXT_ONLY, "refusal": _RefusalPart()}


# --- messages -----------------------------------------------------------------------


class _FunctionCall(Wire):
    name = fields.String(required=True)
    arguments = fields.String(required=True)


class _FunctionToolCall(Wire):
    id = fields.String(required=True)
    function = Object(_FunctionCall(), required=True)


class _CustomCall(Wire):
    name = fields.String(required=True)
    input = fields.String(required=True)


class _CustomToolCall(Wire):
    id = fields.String(required=True)
    custom = Object(_CustomCall(), required=True)


class _InstructionMessage(Wire):
    """``system`` and ``developer``."""

    content = _content(_TEXT_ONLY, required=True)
    name = fields.String()


class _UserMessage(Wire):
    content = _content(_USER_PARTS, required=True)
    name = fields.String()


class _AssistantMessage(Wire):
    content = _content(_ASSISTANT_PARTS, allow_none=True)
    refusal = fields.String(allow_none=True)
    name = fields.String()
    tool_calls = fields.List(
        _tagged({"function": _FunctionToolCall(), "custom": _CustomToolCall()}), allow_none=True
    )


class _ToolMessage(Wire):
    content = _content(_TEXT_ONLY, required=True)
    tool_call_id = fields.String(required=True)


_MESSAGES = {
    "system": _InstructionMessage(),
    "developer": _InstructionMessage(),
    "user": _UserMessage(),
    "assistant": _AssistantMessage(),
    "tool": _ToolMessage(),
}


# --- tools, tool choice, response format ------------------------------------------------


class _FunctionDefinition(Wire):
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(allow_none=True)
    parameters = fields.Dict(allow_none=True)
    strict = StrictBool(allow_none=True)


class _FunctionTool(Wire):
    function = Object(_FunctionDefinition(), required=True)


class _CustomDefinition(Wire):
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String()
    format = fields.Dict()


class _CustomTool(Wire):
    custom = Object(_CustomDefinition(), required=True)


class _Name(Wire):
    name = fields.String(required=True)


class _NamedFunction(Wire):
    function = Object(_Name(), required=True)


class _NamedCustom(Wire):
    custom = Object(_Name(), required=True)


class _AllowedToolsSpec(Wire):
    mode = fields.String(required=True, validate=validate.OneOf(("auto", "required")))
    tools = fields.List(fields.Dict(), required=True)


class _AllowedTools(Wire):
    allowed_tools = Object(_AllowedToolsSpec(), required=True)


class _JSONSchema(Wire):
    name = fields.String(required=True)
    schema = fields.Dict()
    strict = StrictBool(allow_none=True)


class _JSONSchemaFormat(Wire):
    json_schema = Object(_JSONSchema(), required=True)


class _StreamOptions(Wire):
    include_usage = StrictBool()
    include_obfuscation = StrictBool()


class ChatCompletionRequest(Wire):
    """``POST /v1/chat/completions``."""

    model = fields.String(required=True, validate=validate.Length(min=1))
    messages = fields.List(
        _tagged(_MESSAGES, key="role", retired=_RETIRED_ROLES), required=True, validate=validate.Length(min=1)
    )
    max_tokens = _int(validate=validate.Range(min=1))
    max_completion_tokens = _int(validate=validate.Range(min=1))
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    n = _int(validate=validate.Range(min=1))
    stream = StrictBool(allow_none=True)
    stream_options = Object(_StreamOptions(), allow_none=True)
    stop = _Stop(allow_none=True)
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    logit_bias = fields.Dict(keys=fields.String(), values=StrictFloat(), allow_none=True)
    logprobs = StrictBool(allow_none=True)
    top_logprobs = _int(validate=validate.Range(min=0, max=20))
    seed = _int()
    user = fields.String(allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    response_format = _tagged(
        {"text": Wire(), "json_object": Wire(), "json_schema": _JSONSchemaFormat()}, allow_none=True
    )
    reasoning_effort = fields.String(allow_none=True)
    tools = fields.List(_tagged({"function": _FunctionTool(), "custom": _CustomTool()}), allow_none=True)
    tool_choice = ToolChoice(
        {"function": _NamedFunction(), "custom": _NamedCustom(), "allowed_tools": _AllowedTools()},
        unknown=_UNKNOWN,
        allow_none=True,
    )
    parallel_tool_calls = StrictBool(allow_none=True)


REQUEST_SCHEMA = ChatCompletionRequest()
