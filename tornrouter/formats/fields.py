"""Marshmallow building blocks both wire formats' schemas share.

Wire schemas only validate: once a body passes, the codec decodes the raw dict,
so no field may coerce (``"0.5"`` -> 0.5); what passes is relayed as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, fields


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
