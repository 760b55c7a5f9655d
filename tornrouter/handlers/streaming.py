"""``ClientStream``: upstream pieces in, the client's stream bytes out.

When the upstream speaks the client's API, its events are relayed byte for byte
(unknown event types and fields included); otherwise the canonical events are
re-encoded by the client API's stream encoder, a state machine that cannot
emit an ill-formed stream.  Either way every event goes through one
``Accumulator``, which checks the order and builds the response the request log
and the PostResponse/End plugins see.
"""

from __future__ import annotations

from ..accumulate import Accumulator, StreamOrderError
from ..canonical import ChatRequest, ChatResponse, Format, MessageStop, StreamError
from ..formats.base import Codec
from ..providers.streaming import Piece


class ClientStream:
    def __init__(self, codec: Codec, request: ChatRequest, source: Format | None, relay: bool) -> None:
        self.codec = codec
        self.request = request
        self.relay = relay
        self.encoder = None if relay else codec.stream_encoder(request, source=source)
        self.accumulator = Accumulator(source)
        self._owed = b""  # a failed batch's bytes from before its offending event

    @property
    def finished(self) -> bool:
        """The stream has its terminal event (end of message, or error)."""
        return self.accumulator.finished

    @property
    def error(self) -> StreamError | None:
        return self.accumulator.error

    def feed(self, batch: list[Piece]) -> bytes:
        """The client's bytes for one batch.  Raises ``StreamOrderError`` when the
        upstream's events break the stream grammar; the bytes of the pieces before
        the offending one then go out with ``fail``."""
        out: list[bytes] = []
        try:
            for raw, events in batch:
                for event in events:
                    self.accumulator.add(event)
                if self.encoder is not None:
                    out.extend(self.encoder.encode(event) for event in events)
                elif raw is not None:
                    out.append(raw)
                else:
                    out.extend(self._implied(events))
        except StreamOrderError:
            self._owed = b"".join(out)
            raise
        return b"".join(out)

    def _implied(self, events: list) -> list[bytes]:
        """In a relay, events the upstream implied without sending them: its error
        (a malformed event) or its end (a stream cut after its last real event)."""
        for event in events:
            if isinstance(event, StreamError):
                return [self.fail(event.message, event.status)]
            if isinstance(event, MessageStop):
                return [self.codec.stream_done()]
        return []

    def fail(self, message: str, status: int = 502) -> bytes:
        """The client API's own error event, ending the stream (after what a failed
        batch still owes the client)."""
        encoder = self.encoder or self.codec.stream_encoder(self.request, source=None)
        owed, self._owed = self._owed, b""
        return owed + encoder.finish_with_error(message, status)

    def lossy(self) -> list[str]:
        return list(self.encoder.lossy) if self.encoder is not None else []

    def response(self) -> ChatResponse | None:
        """What arrived, assembled; None if the stream never started."""
        try:
            return self.accumulator.response()
        except StreamOrderError:
            return None
