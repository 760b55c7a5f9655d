"""Responses API streams <-> canonical stream events.

The wire events (https://platform.openai.com/docs/api-reference/responses-streaming),
each named by an ``event:`` line and numbered by ``sequence_number``:
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` ... ``response.output_item.done``, inside which
a message has content parts (``response.content_part.added``, text deltas,
``response.output_text.done``, ``response.content_part.done``), a function call
argument deltas and ``.done``, a reasoning item summary parts; last
``response.completed``, ``response.incomplete`` or ``response.failed`` (or an
``error`` event).  There is no end marker beyond the terminal event.

Canonically each content part of a message is a text block (the first marked
with the item's fields, as ``decode`` marks them), each function call a tool
call, each reasoning item a thinking block whose summary parts are
paragraphs; what an item's ``.done`` brings that its start lacked (a reasoning
item's ``encrypted_content``) comes as a ``BLOCK_EXTRA`` delta.  Hosted tools'
items are opaque blocks, started and stopped at their ``.done``.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import orjson

from ...accumulate import BLOCK_EXTRA, StreamOrder, StreamOrderError, merge_usage
from ...canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ChatRequest,
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
from .decode import stop_from_wire, thinking_from_wire
from .encode import arguments_of, echo
from .output import function_call_item, message_item, others_than_marks, reasoning_item, text_part_out
from .shapes import (
    ERROR_STATUS,
    ITEM,
    OUTPUT_ITEM_KEYS,
    REASONING_KEYS,
    RESPONSE_KEYS,
    STATUS_CODE,
    STOP_TO_INCOMPLETE,
    TEXT_PART_KEYS,
    FUNCTION_CALL_KEYS,
    response_id,
    usage_from_wire,
    usage_to_wire,
)

_ITEM_STATUS = frozenset({"status"})
_REFUSAL_KEYS = frozenset({"type", "refusal"})


class ResponsesStreamDecoder:
    """Responses stream events (the SSE ``event`` name and its parsed ``data``)
    -> canonical events.  Unknown event types give nothing.  Raises
    ``ValueError`` on an event that lacks a field it must have, and on one
    for an item or part that was never started."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._count = 0  # blocks started
        self._blocks: dict[tuple[int, int], int] = {}  # (output_index, content_index) -> open block; -1 for the item
        self._items: dict[int, dict[str, Any]] = {}  # output_index -> the item as added
        self._parts: dict[tuple[int, int], dict[str, Any]] = {}  # a part's fields as it started
        self._summaries: dict[int, int] = {}  # reasoning item -> summary parts begun
        self._marked: set[int] = set()  # messages whose first part carries the item's fields
        self._calls = False

    def feed_sse(self, sse: ServerSentEvent) -> list[StreamEvent]:
        data = sse.json()
        if not isinstance(data, dict):
            raise ValueError(f"Responses stream data is not an object: {sse.data[:100]!r}")
        return self.feed(sse.event, data)

    def close(self) -> list[StreamEvent]:
        """The byte stream ended: a stream without its terminal event was cut."""
        if self._done:
            return []
        self._done = True
        return [StreamError(502, "upstream stream ended before it finished")]

    def feed(self, event_type: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        if self._done:
            raise ValueError("Responses stream event after its end")
        kind = data.get("type") or event_type
        try:
            handler = _DECODERS.get(kind)
            return handler(self, data) if handler is not None else []
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed Responses {kind} event: {exc!r}") from exc

    def _block(self, key: tuple[int, int], block: Any) -> list[StreamEvent]:
        index = self._blocks[key] = self._count
        self._count += 1
        return [BlockStart(index, block)]

    def _open(self, key: tuple[int, int], kind: str) -> int:
        index = self._blocks.get(key)
        if index is None:
            raise ValueError(f"a {kind} event for output {key[0]}, part {key[1]}, which is not open")
        return index

    # --- lifecycle

    def _created(self, data: dict[str, Any]) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        response = data["response"]
        return [MessageStart(response.get("id") or new_id("resp"), response.get("model") or "", Usage(), others(response, RESPONSE_KEYS))]

    def _end(self, data: dict[str, Any]) -> list[StreamEvent]:
        if not self._started:
            raise ValueError("a Responses stream ended before response.created")
        self._done = True
        response = data["response"]
        out: list[StreamEvent] = [BlockStop(index) for index in sorted(self._blocks.values())]
        self._blocks.clear()
        stop: StopReason = stop_from_wire(response.get("status"), response.get("incomplete_details"), [])
        if stop == "end_turn" and self._calls:
            stop = "tool_use"
        usage = usage_from_wire(response["usage"]) if response.get("usage") else None
        out.append(MessageDelta(stop, None, usage, others(response, RESPONSE_KEYS)))
        out.append(MessageStop())
        return out

    def _failed(self, data: dict[str, Any]) -> list[StreamEvent]:
        self._done = True
        response = data.get("response") or {}
        return [_error_from_wire(response.get("error") or {})]

    def _error(self, data: dict[str, Any]) -> list[StreamEvent]:
        self._done = True
        return [_error_from_wire(data.get("error") if isinstance(data.get("error"), dict) else data)]

    # --- items

    def _item_added(self, data: dict[str, Any]) -> list[StreamEvent]:
        index, item = data["output_index"], data["item"]
        self._items[index] = item
        kind = item["type"]
        if kind == "function_call":
            self._calls = True
            call = ToolCall(item["call_id"], item["name"], extra=others(item, FUNCTION_CALL_KEYS | _ITEM_STATUS))
            out = self._block((index, -1), call)
            if item.get("arguments"):
                out.append(BlockDelta(out[0].index, "tool_input", item["arguments"]))
            return out
        if kind == "reasoning":
            return self._block((index, -1), Thinking(extra=others(item, REASONING_KEYS | _ITEM_STATUS)))
        return []  # a message opens with its parts; a hosted tool's item, whole at its end

    def _item_done(self, data: dict[str, Any]) -> list[StreamEvent]:
        index, item = data["output_index"], data["item"]
        added = self._items.pop(index, None)
        if added is None:
            raise ValueError(f"output item {index} is done but was never added")
        kind = item.get("type")
        if kind == "message":
            return [BlockStop(self._blocks.pop(k)) for k in sorted(k for k in self._blocks if k[0] == index)]
        block = self._blocks.pop((index, -1), None)
        if block is None:  # an item the canonical model has no block for: whole, now
            start = self._block((index, -1), Opaque("responses", item))
            return [*start, BlockStop(self._blocks.pop((index, -1)))]
        out: list[StreamEvent] = []
        if kind == "reasoning":
            fields = others(thinking_from_wire(item).extra, _ITEM_STATUS)
            started = others(added, REASONING_KEYS | _ITEM_STATUS)
            if fields != started:
                out.append(BlockDelta(block, "thinking", "", {BLOCK_EXTRA: fields}))
        out.append(BlockStop(block))
        return out

    def _part_added(self, data: dict[str, Any]) -> list[StreamEvent]:
        index, part_index, part = data["output_index"], data["content_index"], data["part"]
        item = self._items.get(index)
        if item is None:
            raise ValueError(f"a content part for output {index}, which was never added")
        self._parts[(index, part_index)] = part
        if part["type"] == "refusal":
            text = Text("", others(part, _REFUSAL_KEYS), refusal=True)
        else:
            text = Text("", others(part, TEXT_PART_KEYS))
        if index not in self._marked:  # the message's first part: where the item begins
            text.extra[ITEM] = others(item, OUTPUT_ITEM_KEYS)
            self._marked.add(index)
        return self._block((index, part_index), text)

    def _part_done(self, data: dict[str, Any]) -> list[StreamEvent]:
        key = (data["output_index"], data["content_index"])
        index = self._open(key, "content_part.done")
        del self._blocks[key]
        part, started = data["part"], self._parts.pop(key, {})
        keys = _REFUSAL_KEYS if part.get("type") == "refusal" else TEXT_PART_KEYS
        fields = others(part, keys)
        out: list[StreamEvent] = []
        if fields != others(started, keys):
            out.append(BlockDelta(index, "text", "", {BLOCK_EXTRA: fields}))
        out.append(BlockStop(index))
        return out

    def _text_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        index = self._open((data["output_index"], data["content_index"]), "text delta")
        logprobs = data.get("logprobs")
        return [BlockDelta(index, "text", data["delta"], {"logprobs": logprobs} if logprobs else {})]

    def _arguments_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        index = self._open((data["output_index"], -1), "function_call_arguments.delta")
        return [BlockDelta(index, "tool_input", data["delta"])]

    def _summary_part(self, data: dict[str, Any]) -> list[StreamEvent]:
        output = data["output_index"]
        index = self._open((output, -1), "reasoning_summary_part.added")
        begun = self._summaries.get(output, 0)
        self._summaries[output] = begun + 1
        return [BlockDelta(index, "thinking", "\n\n")] if begun else []

    def _summary_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        index = self._open((data["output_index"], -1), "reasoning_summary_text.delta")
        return [BlockDelta(index, "thinking", data["delta"])]


_DECODERS = MappingProxyType(
    {
        "response.created": ResponsesStreamDecoder._created,
        "response.completed": ResponsesStreamDecoder._end,
        "response.incomplete": ResponsesStreamDecoder._end,
        "response.failed": ResponsesStreamDecoder._failed,
        "error": ResponsesStreamDecoder._error,
        "response.output_item.added": ResponsesStreamDecoder._item_added,
        "response.output_item.done": ResponsesStreamDecoder._item_done,
        "response.content_part.added": ResponsesStreamDecoder._part_added,
        "response.content_part.done": ResponsesStreamDecoder._part_done,
        "response.output_text.delta": ResponsesStreamDecoder._text_delta,
        "response.refusal.delta": ResponsesStreamDecoder._text_delta,
        "response.function_call_arguments.delta": ResponsesStreamDecoder._arguments_delta,
        "response.reasoning_summary_part.added": ResponsesStreamDecoder._summary_part,
        "response.reasoning_summary_text.delta": ResponsesStreamDecoder._summary_delta,
    }
)


def _error_from_wire(error: Any) -> StreamError:
    if not isinstance(error, dict):
        return StreamError(502, str(error))
    status = ERROR_STATUS.get(error.get("code"), 502)
    return StreamError(status, error.get("message") or "upstream stream error")


# --- the encoder ------------------------------------------------------------------------------


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Open:
    """The output item being written, or one of its parts: what its deltas
    need to be written, and what they brought."""

    __slots__ = ("kind", "output", "item", "part", "head", "fragments", "summary")

    def __init__(self, kind: str, output: int, item: dict[str, Any], part: dict[str, Any] | None = None) -> None:
        self.kind = kind  # text, refusal, call, reasoning, opaque, skip
        self.output = output  # its output_index
        self.item = item
        self.part = part
        self.head = b""  # a delta event's bytes up to its delta
        self.fragments: list[str] = []
        self.summary = False  # a reasoning item: its summary part is open


class ResponsesStreamEncoder(Carry):
    """Canonical events -> the exact bytes of a Responses API stream for
    ``request``'s client.

    Every event is numbered (``sequence_number``, from 0) and carries the
    indices the SDK reads (``output_index``, ``item_id``, ``content_index``,
    ``summary_index``).  Texts in a row are the parts of one message item;
    a tool call, a reasoning block or a hosted tool's block ends it.  The
    final ``response.completed`` (or ``response.incomplete``) repeats the
    whole response, output included, so the encoder keeps each finished item.
    ``encode`` refuses an event the stream grammar forbids
    (``StreamOrderError``), and two blocks open at once: this API streams one
    output item at a time.  ``source`` is the format the events came from;
    their extras are written back when it is this one, else named lossy."""

    target = "responses"

    def __init__(self, request: ChatRequest, *, source: Format | None = None) -> None:
        super().__init__(source)
        self._order = StreamOrder()
        self._request = request
        self._seq = 0
        self._response: dict[str, Any] | None = None  # the response object as created
        self._output: list[dict[str, Any]] = []  # finished items, and the message being filled
        self._message: _Open | None = None  # the message item open (its parts come and go)
        self._blocks: dict[int, _Open] = {}  # canonical index -> what it writes
        self._usage = Usage()
        self._delta: MessageDelta | None = None

    @property
    def terminated(self) -> bool:
        return self._order.terminated

    def take_over(self, start: MessageStart, events: int) -> None:
        """Go on from a stream relayed byte for byte so far, whose start was
        ``start`` and which had ``events`` events: only an error may follow."""
        self._order.check(start)
        self._seq = events
        self._response = self._skeleton(start)

    def finish_with_error(self, message: str, status: int = 502) -> bytes:
        return self.encode(StreamError(status, message))

    def encode(self, event: StreamEvent) -> bytes:
        self._order.check(event)
        if isinstance(event, BlockDelta):
            return self._block_delta(event)
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            return self._block_stop(event)
        if isinstance(event, MessageStart):
            return self._message_start(event)
        if isinstance(event, MessageDelta):
            self._delta = event
            self._usage = merge_usage(self._usage, event.usage)
            if event.extra and self.foreign is not None:
                self.lose_all(self.foreign.response(event.extra))
            return self._close_message(STOP_TO_INCOMPLETE.get(event.stop_reason or "end_turn") is not None)
        if isinstance(event, MessageStop):
            return self._finish()
        return self._failed(event)

    def _emit(self, name: str, payload: dict[str, Any]) -> bytes:
        payload["sequence_number"] = self._seq
        self._seq += 1
        return _event(name, payload)

    def _emit_delta(self, open_: _Open, value: str) -> bytes:
        """A delta event: the bytes before the delta are built once per part."""
        out = open_.head + orjson.dumps(value) + b',"sequence_number":' + str(self._seq).encode() + b"}\n\n"
        self._seq += 1
        return out

    # --- lifecycle

    def _message_start(self, event: MessageStart) -> bytes:
        self._usage = event.usage
        response = self._response = self._skeleton(event)
        return self._emit("response.created", {"type": "response.created", "response": response}) + self._emit(
            "response.in_progress", {"type": "response.in_progress", "response": response}
        )

    def _skeleton(self, event: MessageStart) -> dict[str, Any]:
        """The response object as it starts: in progress, no output yet."""
        response: dict[str, Any] = {
            "id": response_id(event.id),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "model": event.model,
            "output": [],
            "usage": None,
        }
        if self.keep:
            response.update(event.extra)
        elif event.extra and self.foreign is not None:
            self.lose_all(self.foreign.response(event.extra))
        for key, value in echo(self._request).items():
            response.setdefault(key, value)
        return response

    def _finish(self) -> bytes:
        delta = self._delta
        stop = (delta.stop_reason if delta is not None else None) or "end_turn"
        reason = STOP_TO_INCOMPLETE.get(stop)
        if stop == "pause_turn":
            self.lose("pause_turn")
        if delta is not None and delta.stop_sequence is not None:
            self.lose("stop_sequence")
        response = dict(self._response or {})
        if self.keep and delta is not None:
            response.update(others_than_marks(delta.extra))
        response["status"] = "incomplete" if reason else "completed"
        response["incomplete_details"] = {"reason": reason} if reason else None
        response["output"] = self._output
        response["usage"] = usage_to_wire(self._usage, keep_extra=self.keep)
        name = "response.incomplete" if reason else "response.completed"
        return self._emit(name, {"type": name, "response": response})

    def _failed(self, event: StreamError) -> bytes:
        error = {"code": STATUS_CODE.get(event.status, "server_error"), "message": event.message}
        if self._response is None:  # nothing was sent: no response to fail
            return self._emit("error", {"type": "error", **error, "param": None})
        response = {**self._response, "status": "failed", "error": error, "output": self._output, "usage": None}
        return self._emit("response.failed", {"type": "response.failed", "response": response})

    # --- items

    def _close_message(self, incomplete: bool = False) -> bytes:
        message, self._message = self._message, None
        if message is None:
            return b""
        message.item["status"] = "incomplete" if incomplete else "completed"
        return self._emit(
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": message.output, "item": message.item},
        )

    def _add_item(self, item: dict[str, Any]) -> tuple[int, bytes]:
        output = len(self._output)
        self._output.append(item)
        added = {**item, "content": []} if item.get("type") == "message" else dict(item)
        if "status" in added:
            added["status"] = "in_progress"
        if added.get("type") == "function_call":
            added["arguments"] = ""
        if added.get("type") == "reasoning":
            added["summary"] = []
        return output, self._emit(
            "response.output_item.added", {"type": "response.output_item.added", "output_index": output, "item": added}
        )

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        if self._blocks:
            raise StreamOrderError(f"BlockStart {event.index} while block {next(iter(self._blocks))} is open: "
                                   "a Responses stream has one output item at a time")
        if isinstance(block, Text):
            return self._text_start(event.index, block)
        out = self._close_message()
        if isinstance(block, ToolCall):
            item = function_call_item(block, self, "in_progress", "")
            output, added = self._add_item(item)
            open_ = self._blocks[event.index] = _Open("call", output, item)
            open_.head = self._head("response.function_call_arguments.delta", item["id"], output)
            arguments = block.raw_arguments or (arguments_of(block, self.keep) if block.input else "")
            return out + added + (self._delta_text(open_, arguments) if arguments else b"")
        if isinstance(block, Thinking):
            item = reasoning_item(block, self, [])
            if item is None:
                self._blocks[event.index] = _Open("skip", -1, {})
                return out
            output, added = self._add_item(item)
            open_ = self._blocks[event.index] = _Open("reasoning", output, item)
            return out + added + (self._thinking_delta(open_, BlockDelta(event.index, "thinking", block.thinking)) if block.thinking else b"")
        if isinstance(block, Opaque) and block.format == "responses":
            item = dict(block.data)
            output, added = self._add_item(item)
            self._blocks[event.index] = _Open("opaque", output, item)
            return out + added
        self.lose(f"content.{block.data.get('type') if isinstance(block, Opaque) else block.type}")
        self._blocks[event.index] = _Open("skip", -1, {})
        return out

    def _text_start(self, index: int, block: Text) -> bytes:
        out = b""
        mark = block.extra.get(ITEM) if self.keep else None
        if self._message is None or mark is not None:
            out += self._close_message()
            item = message_item(mark, "in_progress")
            output, added = self._add_item(item)
            out += added
            self._message = _Open("message", output, item)
        message = self._message
        part = text_part_out(Text("", block.extra, block.refusal), self)
        content_index = len(message.item["content"])
        message.item["content"].append(part)
        kind = "refusal" if block.refusal else "text"
        open_ = self._blocks[index] = _Open(kind, message.output, message.item, part)
        head = self._head(
            "response.refusal.delta" if block.refusal else "response.output_text.delta", message.item["id"], message.output,
            f',"content_index":{content_index}' + ("" if block.refusal else ',"logprobs":[]'),
        )
        open_.head = head
        out += self._emit(
            "response.content_part.added",
            {"type": "response.content_part.added", "item_id": message.item["id"], "output_index": message.output,
             "content_index": content_index, "part": _empty(part)},
        )
        return out + (self._delta_text(open_, block.text) if block.text else b"")

    @staticmethod
    def _head(name: str, item_id: str, output: int, more: str = "") -> bytes:
        return (
            f'event: {name}\ndata: {{"type":"{name}","item_id":' .encode()
            + orjson.dumps(item_id)
            + f',"output_index":{output}{more},"delta":'.encode()
        )

    def _delta_text(self, open_: _Open, value: str) -> bytes:
        open_.fragments.append(value)
        return self._emit_delta(open_, value)

    def _block_delta(self, event: BlockDelta) -> bytes:
        open_ = self._blocks[event.index]
        extra = event.extra
        if extra:
            fields = extra.get(BLOCK_EXTRA)
            if self.keep:
                if isinstance(fields, dict) and open_.kind in ("reasoning", "call"):
                    open_.item.update(fields)
                elif isinstance(fields, dict) and open_.part is not None:
                    open_.part.update(fields)
            elif self.foreign is not None:
                self.lose_all(self.foreign.delta(extra))
        if open_.kind == "reasoning":
            return self._thinking_delta(open_, event)
        if not event.value or open_.kind in ("skip", "opaque"):
            return b""
        if open_.kind in ("text", "refusal") and event.kind == "text":
            return self._delta_text(open_, event.value)
        if open_.kind == "call" and event.kind == "tool_input":
            return self._delta_text(open_, event.value)
        return b""

    def _thinking_delta(self, open_: _Open, event: BlockDelta) -> bytes:
        if event.kind == "signature":
            if not self.keep:
                self.lose("thinking.signature")
            return b""
        if not event.value:
            return b""
        out = b""
        if not open_.summary:
            open_.summary = True
            part = {"type": "summary_text", "text": ""}
            out = self._emit(
                "response.reasoning_summary_part.added",
                {"type": "response.reasoning_summary_part.added", "item_id": open_.item["id"],
                 "output_index": open_.output, "summary_index": 0, "part": part},
            )
            open_.head = self._head("response.reasoning_summary_text.delta", open_.item["id"], open_.output, ',"summary_index":0')
        return out + self._delta_text(open_, event.value)

    def _block_stop(self, event: BlockStop) -> bytes:
        open_ = self._blocks.pop(event.index)
        text = "".join(open_.fragments)
        ids = {"item_id": open_.item.get("id"), "output_index": open_.output}
        if open_.kind in ("text", "refusal"):
            part = open_.part
            assert part is not None
            part["refusal" if open_.kind == "refusal" else "text"] = text
            content_index = open_.item["content"].index(part)
            done = (
                {"type": "response.refusal.done", **ids, "content_index": content_index, "refusal": text}
                if open_.kind == "refusal"
                else {"type": "response.output_text.done", **ids, "content_index": content_index, "text": text,
                      "logprobs": []}
            )
            return self._emit(done["type"], done) + self._emit(
                "response.content_part.done",
                {"type": "response.content_part.done", **ids, "content_index": content_index, "part": part},
            )
        out = b""
        if open_.kind == "call":
            open_.item["arguments"] = text
            out = self._emit("response.function_call_arguments.done",
                             {"type": "response.function_call_arguments.done", **ids, "arguments": text})
        elif open_.kind == "reasoning" and open_.summary:
            part = {"type": "summary_text", "text": text}
            if not (self.keep and open_.item.get("summary")):  # a summary of several parts came whole
                open_.item["summary"] = [part]
            out = self._emit("response.reasoning_summary_text.done",
                             {"type": "response.reasoning_summary_text.done", **ids, "summary_index": 0, "text": text})
            out += self._emit("response.reasoning_summary_part.done",
                              {"type": "response.reasoning_summary_part.done", **ids, "summary_index": 0, "part": part})
        elif open_.kind == "skip":
            return b""
        if open_.kind != "opaque" and "status" in open_.item:
            open_.item["status"] = "completed"
        return out + self._emit(
            "response.output_item.done", {"type": "response.output_item.done", "output_index": open_.output, "item": open_.item}
        )


def _empty(part: dict[str, Any]) -> dict[str, Any]:
    """A part as it starts: its text still to come."""
    key = "refusal" if part.get("type") == "refusal" else "text"
    return {**part, key: ""}
