"""OpenAI chat-completions streams <-> canonical stream events.

The wire (https://platform.openai.com/docs/api-reference/chat-streaming): one
``data:`` line per ``chat.completion.chunk``, whose ``choices[0].delta`` brings
``role``, then ``content`` or ``tool_calls`` fragments (``index``, ``id`` and
``function.name`` first, then ``function.arguments`` pieces); a chunk with
``finish_reason``; with ``stream_options.include_usage`` a chunk with empty
``choices`` and ``usage``; then ``data: [DONE]``.  A failure mid-stream is a
``data: {"error": {...}}`` line.

OpenAI has no content blocks; the decoder makes them: a run of text, of
reasoning (``reasoning_content`` / ``reasoning`` from OpenAI-compatible servers
such as vLLM and DeepSeek) or one tool call is one block, closed when another
begins.  Only choice 0 is read: the router streams one choice.
"""

from __future__ import annotations

import json
import time
from types import MappingProxyType
from typing import Any

import orjson

from ...accumulate import EVENT_EXTRA, StreamOrder, merge_usage
from ...canonical import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    Format,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    StopReason,
    StreamError,
    StreamEvent,
    Text,
    Thinking,
    ToolCall,
    Usage,
    new_id,
)
from ...sse import ServerSentEvent
from ..base import others
from ..lossy import Carry
from .shapes import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    error_type_for,
    others_present,
    usage_from_wire,
    usage_to_wire,
)

# The ``type`` of an OpenAI error body and the status it stands for.
ERROR_STATUS = MappingProxyType(
    {
        "invalid_request_error": 400,
        "authentication_error": 401,
        "permission_error": 403,
        "not_found_error": 404,
        "rate_limit_error": 429,
        "insufficient_quota": 429,
        "requests": 429,
        "tokens": 429,
        "server_error": 500,
    }
)

_CHUNK_KEYS = frozenset({"id", "object", "model", "choices", "usage"})
_TOOL_KEYS = frozenset({"index", "id", "type", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
DONE = b"data: [DONE]\n\n"


class OpenAIStreamDecoder:
    """``chat.completion.chunk`` dicts -> canonical events; pass ``"[DONE]"`` for the end line.

    The stop reason and usage are held back until ``[DONE]`` (usage comes in a
    chunk after the one with ``finish_reason``), so ``MessageDelta`` is
    complete.  Call ``close()`` when the byte stream ends: a stream cut before
    ``finish_reason`` yields a ``StreamError``.  Raises ``ValueError`` on a
    chunk it cannot read (a tool call without a name, interleaved tool calls).
    """

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._count = 0  # blocks started
        self._open_key: object = None  # "text", "thinking", "refusal" or a tool call's index
        self._open_index = -1
        self._tools: dict[int, int] = {}  # tool call index -> block index
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        """One SSE event as the upstream sent it; ``ValueError`` if it is not JSON."""
        return self.feed(sse.data if sse.data == "[DONE]" else sse.json())

    def feed(self, data: dict[str, Any] | str) -> list[StreamEvent]:
        if self._done:
            raise ValueError("OpenAI stream data after its end")
        if data == "[DONE]":
            return self._end()
        if not isinstance(data, dict):
            raise ValueError(f"OpenAI stream data is not a chunk object: {str(data)[:100]!r}")
        if "error" in data:
            self._done = True
            return [_error_from_wire(data["error"])]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            # As the non-streamed codec keeps a completion's fields: the non-null ones.
            extra = others_present(data, _CHUNK_KEYS)
            out.append(MessageStart(data.get("id") or new_id("chatcmpl"), data.get("model", ""), Usage(), extra))
        if data.get("usage"):
            self._usage = usage_from_wire(data["usage"])
        for choice in data.get("choices") or ():
            if choice.get("index", 0) == 0:
                self._choice(choice, out)
        return out

    def close(self) -> list[StreamEvent]:
        """The byte stream ended: finish a stream that lacked ``[DONE]`` but had its
        ``finish_reason`` (some compatible servers omit it), else report it cut."""
        if self._done:
            return []
        if self._finish is not None:
            return self._end()
        self._done = True
        return [StreamError(502, "upstream stream ended before it finished")]

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta") or {}
        if self._finish is not None and any(delta.get(k) for k in ("content", "tool_calls", "refusal", "reasoning_content")):
            raise ValueError("OpenAI stream content after its finish_reason")
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            index = self._block("thinking", out)
            out.append(BlockDelta(index, "thinking", reasoning))
        content = delta.get("content")
        if content:
            index = self._block("text", out)
            logprobs = choice.get("logprobs")
            out.append(BlockDelta(index, "text", content, {"logprobs": logprobs} if logprobs else {}))
        refusal = delta.get("refusal")
        if refusal:
            index = self._block("refusal", out)
            out.append(BlockDelta(index, "text", refusal))
        if delta.get("tool_calls"):
            for position, call in enumerate(delta["tool_calls"]):
                self._tool_call(call.get("index", position), call, out)
        finish = choice.get("finish_reason")
        if finish:
            self._close(out)
            self._finish = finish

    def _tool_call(self, key: int, call: dict[str, Any], out: list[StreamEvent]) -> None:
        function = call.get("function") or {}
        if key == self._open_key:
            index = self._open_index
        elif key in self._tools:
            raise ValueError(f"tool call {key} continued after another block began (interleaved tool calls)")
        else:
            if not function.get("name"):
                raise ValueError(f"tool call {key} starts without a function name")
            extra = others(call, _TOOL_KEYS)
            inner = others(function, _FUNCTION_KEYS)
            if inner:
                extra["function"] = inner
            block = ToolCall(call.get("id") or new_id("call"), function["name"], extra=extra)
            index = self._tools[key] = self._block(key, out, block)
        arguments = function.get("arguments")
        if arguments:
            out.append(BlockDelta(index, "tool_input", arguments))

    def _block(self, key: object, out: list[StreamEvent], block: Block | None = None) -> int:
        """The index of the open block for ``key``, closing the current one and opening it if needed."""
        if key == self._open_key:
            return self._open_index
        self._close(out)
        if block is None:
            block = Thinking() if key == "thinking" else Text("", refusal=key == "refusal")
        index = self._open_index = self._count
        self._open_key = key
        self._count += 1
        out.append(BlockStart(index, block))
        return index

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open_key is not None:
            out.append(BlockStop(self._open_index))
            self._open_key = None

    def _end(self) -> list[StreamEvent]:
        self._done = True
        if not self._started:
            return [StreamError(502, "upstream stream ended before it began")]
        out: list[StreamEvent] = []
        self._close(out)
        stop: StopReason | None = None
        extra: dict[str, Any] = {}
        if self._finish is not None:
            stop = FINISH_TO_STOP.get(self._finish, "end_turn")
            if STOP_TO_FINISH[stop] != self._finish:  # a compatible server's own reason, kept as the codec does
                extra["choice"] = {"finish_reason": self._finish}
        out.append(MessageDelta(stop, None, self._usage, extra))
        out.append(MessageStop())
        return out


def _error_from_wire(error: Any) -> StreamError:
    if not isinstance(error, dict):
        return StreamError(502, str(error))
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else ERROR_STATUS.get(error.get("type"), 502)
    return StreamError(status, error.get("message") or "upstream stream error")


def _opaque_type(block: Block) -> str:
    return block.data.get("type", "opaque") if isinstance(block, Opaque) else block.type


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class OpenAIStreamEncoder(Carry):
    """Canonical events -> the exact bytes of an OpenAI chat-completions stream.

    ``include_usage`` is the client's ``stream_options.include_usage``;
    ``created`` stamps every chunk (default: the source's, else now).
    ``source`` is the format the events were decoded from: their extras are
    written back when it is OpenAI, named in ``lossy`` when it is Anthropic.
    Thinking goes out as ``reasoning_content`` when it came from OpenAI (an
    OpenAI-compatible server's reasoning, as the non-streamed codec relays it);
    otherwise it, and blocks OpenAI cannot carry, are left out and named in
    ``lossy``.  An event the stream grammar forbids raises ``StreamOrderError``.
    """

    target = "openai"

    def __init__(
        self, *, include_usage: bool = False, source: Format | None = None, created: int | None = None
    ) -> None:
        super().__init__(source)
        self._order = StreamOrder()
        self._include_usage = include_usage
        self._created = created
        self._head: dict[str, Any] = {}  # the fields every chunk repeats
        self._tools: dict[int, int] = {}  # block index -> tool call index
        self._fields: dict[int, str] = {}  # block index -> the delta field of a refusal or reasoning block
        self._usage = Usage()

    @property
    def terminated(self) -> bool:
        """True once ``[DONE]`` or an error line has been written: nothing may follow."""
        return self._order.terminated

    def take_over(self, start: MessageStart, events: int) -> None:
        """Go on from a relayed stream: its error event needs nothing of it."""
        self._order.check(start)

    def finish_with_error(self, message: str, status: int = 502) -> bytes:
        """End the stream with an error line, e.g. when the upstream fails mid-stream."""
        return self.encode(StreamError(status, message))

    def encode(self, event: StreamEvent) -> bytes:
        self._order.check(event)
        if isinstance(event, BlockDelta):
            return self._delta(event)
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            return b""
        if isinstance(event, MessageStart):
            return self._message_start(event)
        if isinstance(event, MessageDelta):
            return self._message_delta(event)
        if isinstance(event, MessageStop):
            if not self._include_usage:
                return DONE
            usage = usage_to_wire(self._usage, keep_extra=self.keep)
            return _data({**self._head, "choices": [], "usage": usage}) + DONE
        error_type = error_type_for(event.status)
        return _data({"error": {"message": event.message, "type": error_type, "param": None, "code": None}})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return _data({**self._head, "choices": [choice]})

    def _message_start(self, event: MessageStart) -> bytes:
        self._usage = event.usage
        created = self._created
        if created is None:
            created = (event.extra.get("created") if self.keep else None) or int(time.time())
        head = {"id": event.id, "object": "chat.completion.chunk", "created": created, "model": event.model}
        self._head = self.extra(head, event.extra, "")
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        if isinstance(block, Text):
            field = "content"
            if block.refusal and self.keep:
                field = self._fields[event.index] = "refusal"
            else:
                self.extra({}, block.extra, "text.")
            return self._chunk({field: block.text}) if block.text else b""
        if isinstance(block, ToolCall):
            index = self._tools[event.index] = len(self._tools)
            arguments = block.raw_arguments or (json.dumps(block.input, ensure_ascii=False) if block.input else "")
            function = {"name": block.name, "arguments": arguments}
            call = {"index": index, "id": block.id, "type": "function", "function": function}
            for key, value in self.extra({}, block.extra, "tool_call.").items():
                if key == "function":  # the inner object's own fields (see formats.openai.codec)
                    function.update(value)
                else:
                    call[key] = value
            return self._chunk({"tool_calls": [call]})
        if isinstance(block, Thinking) and self.keep and block.redacted is None:
            # What an OpenAI-compatible server sent as reasoning_content goes back as such.
            self._fields[event.index] = "reasoning_content"
            return self._chunk({"reasoning_content": block.thinking}) if block.thinking else b""
        self.lose("thinking" if isinstance(block, Thinking) else f"content.{_opaque_type(block)}")
        return b""

    def _message_delta(self, event: MessageDelta) -> bytes:
        self._usage = merge_usage(self._usage, event.usage)
        extra = dict(event.extra)
        extra.update(extra.pop(EVENT_EXTRA, {}))
        choice = self.extra({}, extra, "").get("choice") or {}
        stop = event.stop_reason
        finish = choice.get("finish_reason") or (STOP_TO_FINISH.get(stop, "stop") if stop else "stop")
        if stop == "pause_turn":
            self.lose("pause_turn")
        if event.stop_sequence is not None:
            self.lose("stop_sequence")  # OpenAI's "stop" does not say which sequence matched
        return self._chunk({}, finish)

    def _delta(self, event: BlockDelta) -> bytes:
        extra = event.extra
        if extra and self.foreign is not None:
            self.lose_all(self.foreign.delta(extra))
        if not event.value:
            return b""
        if event.kind == "tool_input":
            index = self._tools.get(event.index)
            if index is None:  # the arguments of a block OpenAI cannot carry
                return b""
            return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": event.value}}]})
        field = self._fields.get(event.index, "content")
        if event.kind == "text":
            return self._chunk({field: event.value}, logprobs=extra.get("logprobs") if self.keep else None)
        if event.kind == "thinking" and field == "reasoning_content":
            return self._chunk({field: event.value})
        return b""  # other thinking and signatures: named lossy at the block's start
