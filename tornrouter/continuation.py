"""``continue_on_failure``: a stream that fails after its commit point goes on
from the next target, the text already sent passed to it as prefill.

Without it, a stream whose upstream fails once content has reached the client
ends with the API's error event: the client has half an answer.  With it (per
route, opt-in), ``ContinuingStream`` wraps the committed stream and, when it
fails (an error event, a transport error or timeout, an end without the
terminal event), sends the request again to the route's later targets that
take a prefill, with one more assistant turn at the end carrying the text so
far.  The continuation's own opening (``MessageStart``, its first text block's
start) is swallowed and its text deltas are appended to the text block left
open, so the client sees one stream.  The log entry says so in ``continued``
(``{from, to, after_chars, error}``; ``to`` is None, with ``reason``, when it
could not continue), and the continuation's attempts are marked.

Only text can be continued: an answer that already holds a tool call or a
thinking block, or that has its stop reason, fails as before.  Only
Anthropic-kind targets take a prefill (an assistant turn the model continues);
OpenAI's API has no such thing, so OpenAI-kind targets are passed over, and
the log says so when no target is left.  Anthropic refuses a prefill that ends
in whitespace, so it is sent without it, and the continuation's leading
whitespace, which the client already has, is dropped.  The continuation's
events are re-encoded for the client (nothing is relayed byte for byte) and its
usage counts its own tokens only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from .canonical import (
    BlockDelta, BlockStart, BlockStop, ChatRequest, Message, MessageDelta, MessageStart, MessageStop, StreamError,
    StreamEvent, Text,
)
from .errors import RouterError
from .providers.streaming import EventStream, Piece

if TYPE_CHECKING:
    from .context import RequestRecord
    from .dispatch import Dispatcher

log = logging.getLogger("tornrouter")
PREFILL_KINDS = frozenset({"anthropic"})  # provider kinds whose API continues a final assistant turn


class ContinuingStream(EventStream):
    """Its ``format`` is None: a continuation's bytes are another stream's, so
    everything is re-encoded."""

    def __init__(self, stream: EventStream, record: RequestRecord, dispatcher: Dispatcher) -> None:
        self.stream = stream
        self.record = record
        self.dispatcher = dispatcher
        self.text: list[str] = []  # the assistant text passed on so far
        self.blocks = 0  # blocks started so far (the next block's index)
        self.open_text: int | None = None  # the index of the text block still open
        self.text_only = True
        self.stopping = False  # the stop reason (MessageDelta) or the end has passed
        self.base: int | None = None  # in a continuation: our index of its block 0 (None until it starts one)
        self.merge = False  # its first text block continues our open one
        self.trim = False  # drop the continuation's leading whitespace (the prefill lost its trailing)
        self.continuing = False
        self._opening: asyncio.Future[EventStream] | None = None
        self._cancelled = False

    async def next_batch(self) -> list[Piece] | None:
        while True:
            batch = await self.stream.next_batch()
            if batch is None:
                if self.stopping or self._cancelled:
                    return None
                message = f"provider '{self.record.target.provider.name}': stream ended before it finished"
                batch = [(None, [StreamError(502, message)])]
            pieces, failure = self._take(batch)
            if failure is not None and not await self._continue(failure):
                return [*pieces, (None, [failure])]  # the client gets the error, as without continuation
            if pieces:
                return pieces

    def _take(self, batch: list[Piece]) -> tuple[list[Piece], StreamError | None]:
        """The batch's events, renumbered, up to a ``StreamError`` (returned apart)."""
        out: list[Piece] = []
        for _, events in batch:
            kept: list[StreamEvent] = []
            for event in events:
                if isinstance(event, StreamError):
                    return [*out, (None, kept)] if kept else out, event
                kept.extend(self._track(e) for e in self._map(event))
            if kept:
                out.append((None, kept))
        return out, None

    def _map(self, event: StreamEvent) -> list[StreamEvent]:
        """A continuation's event as part of the client's stream (none, one, or two)."""
        if not self.continuing:
            return [event]
        if isinstance(event, MessageStart):
            return []
        out: list[StreamEvent] = []
        if self.base is None and isinstance(event, (BlockStart, BlockDelta, BlockStop)):
            self.merge = self.open_text is not None and isinstance(event, BlockStart) and isinstance(event.block, Text)
            if self.open_text is not None and not self.merge:
                out.append(BlockStop(self.open_text))  # not text: our open block ends here
            self.base = self.open_text if self.merge else self.blocks
        if isinstance(event, BlockStart):
            if self.merge and event.index == 0:
                return out
            return [*out, BlockStart(self.base + event.index, event.block)]
        if isinstance(event, BlockDelta):
            value = event.value
            if self.trim and event.kind == "text":
                value = value.lstrip()
                self.trim = not value
                if not value:
                    return out
            return [*out, dataclasses.replace(event, index=self.base + event.index, value=value, extra={})]
        if isinstance(event, BlockStop):
            return [*out, BlockStop(self.base + event.index)]
        if isinstance(event, MessageDelta):
            if self.base is None and self.open_text is not None:  # an empty continuation: close our block
                out.append(BlockStop(self.open_text))
            return [*out, dataclasses.replace(event, extra={})]
        return [*out, event]

    def _track(self, event: StreamEvent) -> StreamEvent:
        """Follow what the client has been sent."""
        if isinstance(event, BlockStart):
            self.blocks = event.index + 1
            self.open_text = event.index if isinstance(event.block, Text) else None
            self.text_only = self.text_only and isinstance(event.block, Text)
        elif isinstance(event, BlockDelta) and event.kind == "text":
            self.text.append(event.value)
        elif isinstance(event, BlockDelta):
            self.text_only = False
        elif isinstance(event, BlockStop) and event.index == self.open_text:
            self.open_text = None
        elif isinstance(event, (MessageDelta, MessageStop)):
            self.stopping = True
        return event

    async def _continue(self, error: StreamError) -> bool:
        """Take the stream over on a later target; False (noted in the log) when none can."""
        record = self.record
        if self._cancelled or record.cancelled:
            return False
        failed = record.target
        note = {"from": f"{failed.provider.name}/{failed.model}", "to": None, "after_chars": len("".join(self.text)),
                "error": error.message}
        later = list(record.decision.candidates)
        later = later[later.index(failed) + 1 :] if failed in later else []
        usable = [c for c in later if c.provider.kind in PREFILL_KINDS]
        text = "".join(self.text)
        reason = None
        if self.stopping:
            reason = "the answer had already ended"
        elif not self.text_only:
            reason = "only a text answer can be continued"
        elif not text.strip():
            reason = "no text to continue from"
        elif not usable:
            passed = ", ".join(f"'{c.provider.name}' ({c.provider.kind})" for c in later)
            reason = f"no later target takes a prefill{': ' + passed if passed else ''}"
        if reason is None:
            self.stream.close()  # stops the failed transfer, gives its slot back
            request, self.trim = prefill(record.request, text)
            counted = len(record.attempts)
            self._opening = asyncio.ensure_future(self.dispatcher.open_stream(record, request, usable))
            try:
                stream = await self._opening
            except RouterError as exc:
                reason = f"continuation failed: {exc.message}"
            except asyncio.CancelledError:
                if not self._cancelled:
                    raise
                return False
            finally:
                self._opening = None
                for attempt in record.attempts[counted:]:
                    attempt["continuation"] = True
        if reason is not None:
            record.target = failed  # the log names the target whose stream failed
            record.continued = {**note, "reason": reason}
            log.warning("%s %s: could not continue the stream: %s", record.endpoint, record.id, reason)
            return False
        self.stream, self.continuing, self.base = stream, True, None
        record.continued = {**note, "to": f"{record.target.provider.name}/{record.target.model}"}
        log.warning("%s %s: stream continued on %s after: %s", record.endpoint, record.id, record.continued["to"], error.message)
        return True

    def cancel(self) -> None:
        self._cancelled = True
        if self._opening is not None:
            self._opening.cancel()
        self.stream.cancel()

    def close(self) -> None:
        self.stream.close()


def prefill(request: ChatRequest, text: str) -> tuple[ChatRequest, bool]:
    """``request`` with ``text`` as the start of the assistant's answer, and
    whether trailing whitespace had to be cut from it.  A client's own prefill
    (a final assistant turn) is extended rather than followed by another turn."""
    trimmed = text.rstrip()
    messages = list(request.messages)
    if messages and messages[-1].role == "assistant":
        last = messages[-1]
        messages[-1] = dataclasses.replace(last, content=[*last.content, Text(trimmed)])
    else:
        messages.append(Message("assistant", [Text(trimmed)]))
    return dataclasses.replace(request, messages=messages), trimmed != text
