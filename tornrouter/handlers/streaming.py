"""``ClientStream``: upstream pieces in, the client's stream bytes out.

When the upstream speaks the client's API, its events are relayed byte for byte
(unknown event types and fields included); otherwise the canonical events are
re-encoded by the client API's stream encoder, a state machine that cannot
emit an ill-formed stream.  Either way every event goes through one
``Accumulator``, which checks the order and builds the response the request log
and the PostResponse/End plugins see.

Every way a stream can fail ends it here, with the client API's error event: a
``StreamError`` from upstream (relayed as sent, or encoded), an order the
grammar does not allow, or an end without the terminal event.
"""

from __future__ import annotations

from ..accumulate import Accumulator, StreamOrderError
from ..canonical import ChatRequest, ChatResponse, Format, MessageStart, MessageStop, StreamError
from ..formats.base import Codec
from ..providers.streaming import Piece


class ClientStream:
    """``source`` is the API of the stream's raw bytes (None: nothing to relay);
    ``name`` who sends it, for the errors this makes; ``decoded_from``, for
    events without bytes, the API whose extras they carry (a cached answer)."""

    def __init__(self, codec: Codec, request: ChatRequest, source: Format | None, name: str,
                 decoded_from: Format | None = None) -> None:
        self.codec = codec
        self.request = request
        self.name = name
        extras = source or decoded_from
        self.encoder = None if source == codec.name else codec.stream_encoder(request, source=extras)
        self.accumulator = Accumulator(extras)
        self._error: StreamError | None = None  # one this made: the accumulator keeps the upstream's
        self._relayed = 0  # events relayed byte for byte (an error event after them follows on)

    @property
    def finished(self) -> bool:
        """The stream has its terminal event (end of message, or error)."""
        return self._error is not None or self.accumulator.finished

    @property
    def error(self) -> StreamError | None:
        """What ended the stream, if it failed."""
        return self._error or self.accumulator.error

    @error.setter
    def error(self, error: StreamError) -> None:
        self._error = error

    def feed(self, batch: list[Piece]) -> bytes:
        """The client's bytes for one batch; when the upstream's events break
        the stream grammar, those before the offending one and the error event."""
        out: list[bytes] = []
        try:
            for raw, events in batch:
                if self.finished:  # what comes after the terminal event is not the client's
                    break
                for event in events:
                    self.accumulator.add(event)
                if self.encoder is not None:
                    out.extend(self.encoder.encode(event) for event in events)
                elif raw is not None:
                    out.append(raw)
                    self._relayed += 1
                else:
                    out.extend(self._implied(events))
        except StreamOrderError as exc:
            out.append(self.fail(f"provider '{self.name}': broken stream: {exc}"))
        return b"".join(out)

    def end(self) -> bytes:
        """The source has no more: the error event if the stream did not finish."""
        return b"" if self.finished else self.fail(f"provider '{self.name}': stream ended before it finished")

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
        """The client API's own error event, ending the stream.  After a relay,
        an encoder takes the stream over where the upstream's bytes left it
        (the Responses API numbers its events and names the response in its
        error event)."""
        if self._error is None and self.accumulator.error is None:
            self._error = StreamError(status, message)
        encoder = self.encoder
        if encoder is None:
            encoder = self.codec.stream_encoder(self.request, source=None)
            response = self.response()
            if response is not None:
                encoder.take_over(MessageStart(response.id, response.model), self._relayed)
        return encoder.finish_with_error(message, status)

    def lossy(self) -> list[str]:
        return list(self.encoder.lossy) if self.encoder is not None else []

    def response(self) -> ChatResponse | None:
        """What arrived, assembled; None if the stream never started."""
        try:
            return self.accumulator.response()
        except StreamOrderError:
            return None
