"""Marshmallow building blocks both wire formats' schemas share.

Wire schemas only validate: once a body passes, the codec decodes the raw dict,
so no field may coerce (``"0.5"`` -> 0.5); what passes is relayed as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, missing


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


class StrictBool(fields.Boolean):
    """``true`` or ``false``; ``Boolean`` alone would also accept ``1`` and ``"yes"``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


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
