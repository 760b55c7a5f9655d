"""Gemini wire -> canonical: one part at a time (the stream decoder reads the
same parts), and whole ``GenerateContentResponse`` bodies.

A thought signature comes back to Gemini on the next turn whatever API the
client speaks: ``on_signature(call_id, signature)`` hears each one a function
call carries (the provider keeps them by call id, for clients without a
thinking block), and with ``carry_signatures`` each becomes a ``Thinking``
block's signature (prefixed ``SIGNATURE_PREFIX``) just before the block of its
part, for a client whose thinking blocks come back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...canonical import Block, ChatResponse, Opaque, Text, Thinking, ToolCall, new_id
from .shapes import PART_KEYS, RESPONSE_KEYS, SIGNATURE_PREFIX, SILENT_CANDIDATE_KEYS, finish_from_wire, usage_from_wire

SignatureSink = Callable[[str, str], None]


class PartReader:
    """Parts -> blocks, with the signature rules above."""

    __slots__ = ("carry_signatures", "on_signature")

    def __init__(self, *, carry_signatures: bool = False, on_signature: SignatureSink | None = None) -> None:
        self.carry_signatures = carry_signatures
        self.on_signature = on_signature

    def blocks(self, part: dict[str, Any]) -> list[Block]:
        """The canonical blocks of one part: its own, after a signature-only
        ``Thinking`` when it carries a signature (and is not itself thought)."""
        signature = part.get("thoughtSignature")
        carried = SIGNATURE_PREFIX + signature if signature and self.carry_signatures else None
        if part.get("thought"):
            return [Thinking(part.get("text") or "", carried)]
        block = self.block(part)
        if signature and isinstance(block, ToolCall) and self.on_signature is not None:
            self.on_signature(block.id, signature)
        out: list[Block] = [] if carried is None else [Thinking("", carried)]
        if block is not None:
            out.append(block)
        return out

    @staticmethod
    def block(part: dict[str, Any]) -> Block | None:
        """A part's block; None for an empty text (a part that only carries a
        signature); a part of a kind the client APIs lack stays opaque."""
        if "functionCall" in part:
            call = part["functionCall"]
            args = call.get("args")
            return ToolCall(call.get("id") or new_id("call"), call["name"], args if isinstance(args, dict) else {})
        if "text" in part:
            return Text(part["text"]) if part["text"] else None
        key = next((k for k in part if k not in PART_KEYS), None) or next(iter(part), "part")
        return Opaque("gemini", {"type": key, **part})


def candidate_extra(candidate: dict[str, Any]) -> dict[str, Any]:
    """A candidate's fields a client API has no place for (``citationMetadata``,
    ``groundingMetadata``, ``finishMessage``...), reported lossy."""
    return {k: v for k, v in candidate.items() if k not in SILENT_CANDIDATE_KEYS}


def response_from_wire(body: Any, reader: PartReader | None = None) -> ChatResponse:
    """A ``GenerateContentResponse``; a prompt blocked before any candidate is
    an empty answer stopped by the content filter."""
    if not isinstance(body, dict) or not ("candidates" in body or "promptFeedback" in body):
        raise ValueError("not a Gemini generateContent response: expected an object with 'candidates'")
    reader = reader or PartReader()
    try:
        candidates = body.get("candidates") or []
        content: list[Block] = []
        extra = {k: v for k, v in body.items() if k not in RESPONSE_KEYS}
        if not candidates:
            stop = "content_filter" if (body.get("promptFeedback") or {}).get("blockReason") else "end_turn"
        else:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                content += reader.blocks(part)
            has_calls = any(isinstance(b, ToolCall) for b in content)
            stop = finish_from_wire(candidate.get("finishReason") or "STOP", has_calls)
            extra.update(candidate_extra(candidate))
        return ChatResponse(
            id=body.get("responseId") or new_id("msg"),
            model=body.get("modelVersion") or "",
            content=content,
            stop_reason=stop,
            usage=usage_from_wire(body.get("usageMetadata") or {}),
            source="gemini",
            extra=extra,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed Gemini generateContent response: {exc!r}") from exc
