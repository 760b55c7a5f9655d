"""The Bedrock Converse vocabulary the codec and the stream decoder share."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...canonical import StopReason, Usage
from ...check import check_usage
from ..base import Foreign

STOP_FROM_WIRE: Mapping[str, StopReason] = MappingProxyType(
    {
        "end_turn": "end_turn",
        "tool_use": "tool_use",
        "max_tokens": "max_tokens",
        "stop_sequence": "stop_sequence",
        "guardrail_intervened": "content_filter",
        "content_filtered": "content_filter",
        "model_context_window_exceeded": "max_tokens",
    }
)
# The image formats Converse takes, by media type.
IMAGE_FORMATS: Mapping[str, str] = MappingProxyType(
    {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
)
DOCUMENT_FORMATS: Mapping[str, str] = MappingProxyType(
    {"application/pdf": "pdf", "text/csv": "csv", "text/plain": "txt", "text/html": "html", "text/markdown": "md",
     "application/msword": "doc", "application/vnd.ms-excel": "xls",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}
)
CACHE_POINT: Mapping[str, Any] = MappingProxyType({"cachePoint": {"type": "default"}})
RESPONSE_KEYS = frozenset({"output", "stopReason", "usage", "metrics"})


def stop_from_wire(value: str | None) -> StopReason | None:
    return None if value is None else STOP_FROM_WIRE.get(value, "end_turn")


def usage_from_wire(d: Mapping[str, Any]) -> Usage:
    """Converse counts input without the cache, as Anthropic does."""
    return check_usage(
        Usage(
            input_tokens=d.get("inputTokens") or 0,
            output_tokens=d.get("outputTokens") or 0,
            cache_read_tokens=d.get("cacheReadInputTokens") or 0,
            cache_creation_tokens=d.get("cacheWriteInputTokens") or 0,
        )
    )


class _Extras(Foreign):
    """A response's extras (``additionalModelResponseFields``, ``trace``...) are wire fields."""


FOREIGN = _Extras()
