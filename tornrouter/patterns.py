"""``Patterns``: a settings field for a list of regexes, checked when the config loads."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields


class PatternSet:
    """Compiled regexes, each with its own flags (``(?i)`` stays local to its pattern)."""

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        self.patterns = patterns

    def search(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)

    def sub(self, replacement: str, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(replacement, text)
        return text


class Patterns(fields.List):
    """A non-empty list of regexes; loads as a ``PatternSet``, so a bad pattern
    is a config error at start rather than a surprise on the first request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> PatternSet:
        texts = super()._deserialize(value, attr, data, **kwargs)
        if not texts:
            raise ValidationError("needs at least one pattern")
        compiled = []
        for text in texts:
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                raise ValidationError(f"not a valid regex {text!r}: {exc}") from None
        return PatternSet(compiled)
