"""Fast checks compiled from the wire schemas, for bodies that are valid.

``schema_accepts(schema)(data)`` is True only for a body marshmallow would
accept: each field becomes a plain predicate (``type(v) is str``, a range, a
loop over a list), built once per field and kept on it.  Nearly every body is
valid, and this checks one in a fraction of the time marshmallow's per-field
machinery takes.  The predicates are sound, not complete: when one does not
vouch for a value, the caller asks marshmallow (``first_problem``), which stays
the authority on what is valid and words the error.  A field of a type not
listed here is checked by marshmallow itself, so a new field type can never
let an invalid value through.

A custom field takes part by defining ``value_check(self)``, returning the
predicate for a present, non-null value; it must be defined on the class
itself (a subclass that changes ``_deserialize`` does not inherit it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing, validate

Predicate = Callable[[Any], bool]


def schema_accepts(schema: Schema) -> Callable[[Mapping[str, Any]], bool]:
    """The predicate of a whole object under ``schema`` (its checks live on fields)."""
    compiled = schema.__dict__.get("_accepts")
    if compiled is None:
        checks = {name: field_accepts(field) for name, field in schema.load_fields.items()}
        required = tuple(name for name, field in schema.load_fields.items() if field.required)

        def compiled(data: Mapping[str, Any]) -> bool:
            # An absent field that is not required is valid: only what is there is looked at.
            for name in required:
                if name not in data:
                    return False
            for name, value in data.items():
                accepts = checks.get(name)
                if accepts is not None and not accepts(value):
                    return False
            return True

        schema._accepts = compiled
    return compiled


def field_accepts(field: fields.Field) -> Predicate:
    """The predicate of one field's value (``missing`` when absent)."""
    compiled = field.__dict__.get("_accepts")
    if compiled is None:
        compiled = field._accepts = _compile(field)
    return compiled


def _compile(field: fields.Field) -> Predicate:
    value_ok = _value_check(field)
    checks = [_validator_check(v) for v in field.validators]
    if value_ok is None or None in checks or getattr(field, "pre_load", None) or getattr(field, "post_load", None):
        return _by_marshmallow(field)
    required, allow_none = field.required, field.allow_none

    def accepts(value: Any) -> bool:
        if value is missing:
            return not required
        if value is None:
            return allow_none
        if not value_ok(value):
            return False
        for check in checks:
            if not check(value):
                return False
        return True

    return accepts


def _by_marshmallow(field: fields.Field) -> Predicate:
    def accepts(value: Any) -> bool:
        try:
            field.deserialize(value)
        except ValidationError:
            return False
        return True

    return accepts


def _value_check(field: fields.Field) -> Predicate | None:
    own = type(field).__dict__.get("value_check")
    if own is not None:
        return own(field)
    kind = type(field)
    if kind is fields.String:
        return lambda v: isinstance(v, str)
    if kind is fields.Integer:
        return lambda v: type(v) is int
    if kind is fields.Float:
        return finite_number
    if kind in (fields.Raw, fields.Field):
        return lambda v: True
    if kind is fields.List:
        inner = field_accepts(field.inner)
        return lambda v: type(v) is list and all(inner(item) for item in v)
    if kind is fields.Dict:
        key_ok = field_accepts(field.key_field) if field.key_field is not None else None
        value_ok = field_accepts(field.value_field) if field.value_field is not None else None
        return lambda v: (
            isinstance(v, dict)
            and (key_ok is None or all(key_ok(k) for k in v))
            and (value_ok is None or all(value_ok(x) for x in v.values()))
        )
    return None


def finite_number(value: Any) -> bool:
    """A JSON number a ``Float`` takes: not a bool, not NaN or infinite."""
    return (type(value) is float and math.isfinite(value)) or (type(value) is int and abs(value) < 2**53)


def _validator_check(validator: Any) -> Predicate | None:
    kind = type(validator)
    if kind is validate.Range:
        low, high = validator.min, validator.max
        low_in, high_in = validator.min_inclusive, validator.max_inclusive
        return lambda v: (low is None or (v >= low if low_in else v > low)) and (
            high is None or (v <= high if high_in else v < high)
        )
    if kind is validate.Length:
        low, high, equal = validator.min, validator.max, validator.equal
        if equal is not None:
            return lambda v: len(v) == equal
        return lambda v: (low is None or len(v) >= low) and (high is None or len(v) <= high)
    if kind is validate.OneOf:
        choices = validator.choices
        return lambda v: isinstance(v, (str, int, float)) and v in choices
    return None
