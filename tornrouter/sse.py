"""Server-sent events: bytes in, events out, and back.

``SSEDecoder`` follows the WHATWG event-stream interpretation rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
as anthropic-sdk-python's ``_streaming.SSEDecoder`` does, with two things a
proxy that sees arbitrary network chunks needs: a ``\\r\\n`` split across two
chunks is one line break, not two, and UTF-8 is decoded only on whole lines,
so a character split across chunks survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event.  ``event`` is None for the default type (``message``);
    ``id`` is the last event id seen so far, as the spec carries it over."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    """Incremental event-stream parser: ``feed`` each chunk as it arrives, ``close`` at the end.

    An event is dispatched by the blank line that ends it; one with no ``data``
    line is discarded, as the spec says.  At the end of the stream an event
    without its blank line is dropped too: ``close()`` says whether that
    happened, so a caller can tell a cut stream from a finished one.
    """

    __slots__ = ("_buf", "_skip_lf", "_at_start", "_event", "_data", "_id", "_retry", "_pending")

    def __init__(self) -> None:
        self._buf = bytearray()  # the unfinished line
        self._skip_lf = False  # the last chunk ended in \r: a leading \n ends nothing
        self._at_start = True  # a UTF-8 BOM may open the stream
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._pending = False  # a field line was read since the last dispatch

    @property
    def mid_event(self) -> bool:
        """True while part of an event (a line or a field) awaits its terminator."""
        return self._pending or bool(self._buf)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events completed by ``chunk``, in order."""
        if not (self._buf or self._pending or self._skip_lf or self._at_start) and chunk[-2:] == b"\n\n":
            events = self._whole_events(chunk)
            if events is not None:
                return events
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self._buf += chunk
            return []
        self._skip_lf = end == len(chunk) - 1 and chunk[end] == _CR
        if self._buf:
            self._buf += chunk[: end + 1]
            block = bytes(self._buf)
            self._buf = bytearray(chunk[end + 1 :])
        else:
            block = chunk[: end + 1]
            self._buf += chunk[end + 1 :]
        # bytes.splitlines() breaks on \n, \r and \r\n only: exactly the SSE line ends.
        lines = block.splitlines()
        if self._at_start:
            self._at_start = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        events = []
        for raw in lines:
            if not raw:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif raw[0] != 0x3A:  # lines starting with ':' are comments
                self._field(raw.decode("utf-8", "replace"))
        return events

    def _whole_events(self, chunk: bytes) -> list[ServerSentEvent] | None:
        """Events of the shape upstreams send, ``[event: NAME\\n]data: JSON\\n\\n``
        each, read without the line-by-line machinery; None for anything else
        (comments, ids, several data lines, CR line ends), which ``feed`` reads
        the general way: the result is the same either way."""
        if b"\r" in chunk:
            return None
        events = []
        for block in chunk[:-2].split(b"\n\n"):
            name = None
            if block[:7] == b"event: ":
                head, _, block = block.partition(b"\n")
                name = head[7:].decode("utf-8", "replace") or None
            if block[:6] != b"data: " or b"\n" in block:
                return None
            events.append(ServerSentEvent(block[6:].decode("utf-8", "replace"), name, self._id))
        return events

    def close(self) -> bool:
        """End of stream: drop any unfinished event; True if there was one."""
        cut = self.mid_event
        self._buf.clear()
        self._event, self._data, self._retry, self._pending = None, [], None, False
        return cut

    def _field(self, line: str) -> None:
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        self._pending = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # Any other field name is ignored, as the spec says.

    def _dispatch(self) -> ServerSentEvent | None:
        event = None
        if self._data:
            event = ServerSentEvent("\n".join(self._data), self._event, self._id, self._retry)
            self._data = []
        self._event, self._retry, self._pending = None, None, False
        return event


def encode_event(data: str, event: str | None = None) -> bytes:
    """One SSE event; a multi-line ``data`` becomes several ``data:`` lines."""
    if "\n" in data or "\r" in data:
        data = "\ndata: ".join(data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if event is None:
        return f"data: {data}\n\n".encode()
    if "\n" in event or "\r" in event:
        raise ValueError(f"an SSE event name cannot contain a line break: {event!r}")
    return f"event: {event}\ndata: {data}\n\n".encode()
