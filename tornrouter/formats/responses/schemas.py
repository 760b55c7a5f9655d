"""Marshmallow schemas of the Responses API request body.

They only validate (see ``formats.fields``): once a body passes, the codec
decodes the raw dict.  Message roles and content-part types are closed sets, as
the API keeps them; input item types and tool types are open: the API adds
hosted tools and the items they produce every few months, and a gateway relays
those it does not know to an upstream of the same API.

Reference: the ``openai`` SDK's ``types/responses/response_create_params.py``
and the ``*_param.py`` types it imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from ..accepts import Predicate
from ..fields import Content, Object, StrictBool, StrictFloat, Tagged, ToolChoice, Wire

_UNKNOWN = "'{kind}' is not one of: {choices}."
ROLES = ("user", "assistant", "system", "developer")


def _int(**kwargs: Any) -> fields.Integer:
    """A JSON integer (``1.5`` and ``"1"`` are refused), nullable as the API allows."""
    return fields.Integer(strict=True, allow_none=True, **kwargs)


class _Items(fields.Field):
    """A list whose entries are each checked by ``field``."""

    def __init__(self, field: Tagged, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.field = field

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        for index, item in enumerate(value):
            errors = self.field.errors(item)
            if errors:
                raise ValidationError({index: errors})
        return value

    def value_check(self) -> Predicate:
        accepts = self.field.accepts
        return lambda v: isinstance(v, list) and all(accepts(item) for item in v)


class _Input(_Items):
    """``input``: a string (one user message) or a list of input items."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValidationError("Must be a string or a list of input items.")
        return super()._deserialize(value, attr, data, **kwargs)

    def value_check(self) -> Predicate:
        items = _Items.value_check(self)
        return lambda v: isinstance(v, str) or items(v)


# --- content parts -------------------------------------------------------------------


class _TextPart(Wire):
    text = fields.String(required=True)


class _RefusalPart(Wire):
    refusal = fields.String(required=True)


class _ImagePart(Wire):
    image_url = fields.String(allow_none=True)
    file_id = fields.String(allow_none=True)
    detail = fields.String()


class _FilePart(Wire):
    file_data = fields.String()
    file_url = fields.String()
    file_id = fields.String(allow_none=True)
    filename = fields.String()


class _InputAudio(Wire):
    data = fields.String(required=True)
    format = fields.String(required=True)


class _AudioPart(Wire):
    input_audio = Object(_InputAudio(), required=True)


_INPUT_PARTS = {"input_text": _TextPart(), "input_image": _ImagePart(), "input_file": _FilePart()}
_PARTS = {**_INPUT_PARTS, "input_audio": _AudioPart(), "output_text": _TextPart(), "refusal": _RefusalPart()}


# --- input items -------------------------------------------------------------------------


class _Message(Wire):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Content(_PARTS, noun="content parts", unknown=_UNKNOWN, required=True)


class _FunctionCall(Wire):
    call_id = fields.String(required=True)
    name = fields.String(required=True)
    arguments = fields.String(required=True)


class _FunctionCallOutput(Wire):
    call_id = fields.String(required=True)
    output = Content(_INPUT_PARTS, noun="content parts", unknown=_UNKNOWN, required=True)


class _SummaryText(Wire):
    text = fields.String(required=True)


class _Reasoning(Wire):
    id = fields.String()
    summary = _Items(Tagged({"summary_text": _SummaryText()}, unknown=_UNKNOWN), required=True)
    encrypted_content = fields.String(allow_none=True)


class _ItemReference(Wire):
    id = fields.String(required=True)


_ITEMS = {
    "message": _Message(),
    "function_call": _FunctionCall(),
    "function_call_output": _FunctionCallOutput(),
    "reasoning": _Reasoning(),
    "item_reference": _ItemReference(),
}


# --- tools, tool choice, text, reasoning --------------------------------------------------


class _FunctionTool(Wire):
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(allow_none=True)
    parameters = fields.Dict(allow_none=True)
    strict = StrictBool(allow_none=True)


class _Name(Wire):
    name = fields.String(required=True)


class _JSONSchemaFormat(Wire):
    name = fields.String(required=True)
    schema = fields.Dict(required=True)
    strict = StrictBool(allow_none=True)
    description = fields.String()


class _Text(Wire):
    format = Tagged(
        {"text": Wire(), "json_object": Wire(), "json_schema": _JSONSchemaFormat()}, unknown=_UNKNOWN
    )
    verbosity = fields.String(allow_none=True, validate=validate.OneOf(("low", "medium", "high")))


class _ReasoningConfig(Wire):
    effort = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)


class ResponsesRequest(Wire):
    """``POST /v1/responses``."""

    model = fields.String(required=True, validate=validate.Length(min=1))
    input = _Input(Tagged(_ITEMS, unknown=None, default="message"))
    instructions = fields.String(allow_none=True)
    max_output_tokens = _int(validate=validate.Range(min=1))
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    stream = StrictBool(allow_none=True)
    tools = _Items(Tagged({"function": _FunctionTool()}, unknown=None), allow_none=True)
    tool_choice = ToolChoice({"function": _Name(), "custom": _Name()}, unknown=None, allow_none=True)
    parallel_tool_calls = StrictBool(allow_none=True)
    text = Object(_Text(), allow_none=True)
    reasoning = Object(_ReasoningConfig(), allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    user = fields.String(allow_none=True)
    safety_identifier = fields.String(allow_none=True)
    prompt_cache_key = fields.String(allow_none=True)
    previous_response_id = fields.String(allow_none=True)
    include = fields.List(fields.String(), allow_none=True)
    store = StrictBool(allow_none=True)
    background = StrictBool(allow_none=True)
    truncation = fields.String(allow_none=True, validate=validate.OneOf(("auto", "disabled")))
    max_tool_calls = _int(validate=validate.Range(min=1))
    top_logprobs = _int(validate=validate.Range(min=0, max=20))
    service_tier = fields.String(allow_none=True)


REQUEST_SCHEMA = ResponsesRequest()
