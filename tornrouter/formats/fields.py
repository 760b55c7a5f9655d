"""Marshmallow building blocks both wire formats' schemas share.

Wire schemas only validate: once a body passes, the codec decodes the raw dict,
so no field may coerce (``"0.5"`` -> 0.5); what passes is relayed as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, missing

from .accepts import Predicate, finite_number, schema_accepts


class Wire(Schema):
    """A level of a wire body: unknown fields pass, since the APIs gain new ones
    every few weeks and a gateway must relay what it does not know yet."""

    class Meta:
        unknown = INCLUDE


class StrictFloat(fields.Float):
    """A JSON number; ``Float`` alone would also accept the string ``"0.5"``."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)

    def value_check(self) -> Predicate:
        return finite_number


class StrictBool(fields.Boolean):
    """``true`` or ``false``; ``Boolean`` alone would also accept ``1`` and ``"yes"``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)

    def value_check(self) -> Predicate:
        return lambda v: v is True or v is False


def first_problem(schema: Schema, data: Mapping[str, Any]) -> Any:
    """The first problem of ``data`` under ``schema``, shaped as marshmallow
    reports it (``{"messages": {0: {"role": [...]}}}``); None when valid.

    Runs the schema's fields one by one, which is exact for these schemas (they
    INCLUDE unknown fields and put their checks on fields, not on the schema)
    and several times faster than ``Schema.validate``, whose machinery would
    run once per request, message, content part and tool.
    """
    for name, field in schema.load_fields.items():
        try:
            field.deserialize(data.get(name, missing), name, data)
        except ValidationError as error:
            return {name: error.messages}
    return None


class Tagged(fields.Field):
    """An object validated by the schema its ``key`` field (``type``, ``role``) names.

    ``unknown`` is the message refusing a value not listed (``{kind}`` and
    ``{choices}`` filled in), or None to let such an object pass unchecked, as a
    block type the API added after this code was written.  ``retired`` maps
    values the API no longer takes to the message refusing them.  ``default``
    is the value of an object without ``key`` (an Anthropic custom tool).
    """

    def __init__(
        self,
        schemas: Mapping[str, Schema],
        *,
        key: str = "type",
        unknown: str | None = "Must be one of: {choices}.",
        retired: Mapping[str, str] | None = None,
        default: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schemas = schemas
        self.key = key
        self.unknown = unknown
        self.retired = retired or {}
        self.default = default

    def errors(self, value: Any) -> Any:
        """The errors of one object, shaped as marshmallow reports them (None when valid)."""
        if not isinstance(value, dict):
            return ["Must be an object."]
        kind = value.get(self.key, self.default)
        if not isinstance(kind, str):
            return {self.key: ["Missing data for required field." if kind is None else "Not a valid string."]}
        schema = self.schemas.get(kind)
        if schema is not None:
            return first_problem(schema, value)
        if kind in self.retired:
            return {self.key: [self.retired[kind]]}
        if self.unknown is None:
            return None
        return {self.key: [self.unknown.format(kind=kind, choices=", ".join(self.schemas))]}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        errors = self.errors(value)
        if errors:
            raise ValidationError(errors)
        return value

    def value_check(self) -> Predicate:
        return self.accepts

    def accepts(self, value: Any) -> bool:
        """``errors(value)`` is None, sooner (see ``formats.accepts``)."""
        if not isinstance(value, dict):
            return False
        kind = value.get(self.key, self.default)
        schema = self.schemas.get(kind) if isinstance(kind, str) else None
        if schema is not None:
            return schema_accepts(schema)(value)
        return self.unknown is None and isinstance(kind, str) and kind not in self.retired


class Content(Tagged):
    """A string, or a list of parts each checked by the schema of its ``type``.

    ``noun`` names the parts in the message refusing anything else;
    ``non_empty`` refuses an empty list.
    """

    def __init__(self, schemas: Mapping[str, Schema], *, noun: str, non_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(schemas, **kwargs)
        self.non_empty = non_empty
        self.shape = f"Must be a string or a {'non-empty ' if non_empty else ''}list of {noun}."

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or (self.non_empty and not value):
            raise ValidationError(self.shape)
        for index, part in enumerate(value):
            errors = self.errors(part)
            if errors:
                raise ValidationError({index: errors})
        return value

    def value_check(self) -> Predicate:
        accepts, non_empty = self.accepts, self.non_empty
        return lambda v: isinstance(v, str) or (
            type(v) is list and (bool(v) or not non_empty) and all(accepts(part) for part in v)
        )


class Object(fields.Field):
    """A nested object checked by ``schema``; a lighter ``fields.Nested`` (see ``first_problem``)."""

    def __init__(self, schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("Must be an object.")
        errors = first_problem(self.schema, value)
        if errors:
            raise ValidationError(errors)
        return value

    def value_check(self) -> Predicate:
        accepts = schema_accepts(self.schema)
        return lambda v: isinstance(v, dict) and accepts(v)


class ToolChoice(Tagged):
    """OpenAI's ``tool_choice``: ``"none"`` | ``"auto"`` | ``"required"`` | an object
    checked by the schema its ``type`` names."""

    MODES = ("none", "auto", "required")

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if value in self.MODES:
                return value
            raise ValidationError(f"Must be one of: {', '.join(self.MODES)}, or an object.")
        return super()._deserialize(value, attr, data, **kwargs)

    def value_check(self) -> Predicate:
        return lambda v: v in self.MODES if isinstance(v, str) else self.accepts(v)
