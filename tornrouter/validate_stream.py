"""Check a recorded SSE transcript against the stream rules of its API.

    python -m tornrouter.validate_stream FILE [--format openai|anthropic|responses]

prints one line per problem and exits 1, or prints ``ok``.  The rules are the
ones the stream encoders keep: the event order, block (Anthropic), tool-call
(OpenAI) or output item and part (Responses, ``validate_responses``)
start/delta/stop discipline and dense indices, tool input that parses as
JSON, event names and sequence numbers (Responses), and a terminal event
(``message_stop`` / ``[DONE]`` / ``response.completed``... / an error).  It
reads the wire only, so it can judge any server's output, ours or an upstream's.

It is test and operator tooling: the serving path never imports it (a test
in ``tests/test_stream_codecs.py`` says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .sse import ServerSentEvent, SSEDecoder
from .validate_responses import ResponsesRules

# content_block_delta type -> (its payload field, the block types it may extend; None: any tool-like block)
_ANTHROPIC_DELTAS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "text_delta": ("text", ("text",)),
    "citations_delta": ("citation", ("text",)),
    "thinking_delta": ("thinking", ("thinking",)),
    "signature_delta": ("signature", ("thinking",)),
    "input_json_delta": ("partial_json", None),
}
_NOT_TOOL_LIKE = frozenset({"text", "thinking", "redacted_thinking"})
_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


def validate(data: bytes, fmt: str | None = None) -> list[str]:
    """The problems of an SSE transcript (``fmt`` ``openai`` / ``anthropic``, or None
    to detect it); an empty list means it follows the rules."""
    decoder = SSEDecoder()
    events = decoder.feed(data)
    problems = ["the stream ends mid-event (no blank line after its last event)"] if decoder.close() else []
    if not events:
        return [*problems, "no events"]
    fmt = fmt or detect_format(events)
    checker = {"anthropic": _AnthropicRules, "responses": ResponsesRules}.get(fmt, _OpenAIRules)()
    for number, sse in enumerate(events, 1):
        try:
            payload = None if sse.data == "[DONE]" else json.loads(sse.data)
        except ValueError:
            problems.append(f"event {number}: data is not JSON: {sse.data[:80]!r}")
            continue
        try:
            found = checker.check(sse, payload)
        except (TypeError, KeyError, AttributeError) as exc:  # a field of the wrong type
            found = [f"malformed event: {exc!r}"]
        problems.extend(f"event {number} ({checker.name(sse, payload)}): {p}" for p in found)
    problems.extend(checker.finish())
    return problems


def detect_format(events: list[ServerSentEvent]) -> str:
    """``responses`` when the first event is a ``response.*`` one; ``anthropic``
    when it is named or typed otherwise, as Anthropic's are; else ``openai``."""
    first = events[0]
    try:
        payload = json.loads(first.data)
    except ValueError:
        payload = None
    kind = first.event or (payload.get("type") if isinstance(payload, dict) else None)
    if isinstance(kind, str) and (kind.startswith("response.") or "sequence_number" in (payload or {})):
        return "responses"
    return "anthropic" if kind is not None else "openai"


class _AnthropicRules:
    def __init__(self) -> None:
        self.started = self.delta_seen = self.ended = False
        self.blocks: list[str] = []  # block type by index
        self.open: set[int] = set()
        self.json: dict[int, list[str]] = {}  # partial_json fragments by block index
        self.handlers = {
            "message_start": self._message_start,
            "content_block_start": self._content_block_start,
            "content_block_delta": self._content_block_delta,
            "content_block_stop": self._content_block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
        }

    @staticmethod
    def name(sse: ServerSentEvent, payload: Any) -> str:
        return sse.event or (payload.get("type") if isinstance(payload, dict) else None) or "message"

    def check(self, sse: ServerSentEvent, data: Any) -> list[str]:
        if not isinstance(data, dict):
            return ["data is not a JSON object"]
        kind = data.get("type")
        problems = [] if sse.event == kind else [f"event name {sse.event!r} differs from data type {kind!r}"]
        if self.ended:
            return [*problems, "comes after the end of the stream"]
        if kind == "ping":
            return problems
        if kind == "error":
            self.ended = True
            error = data.get("error")
            if not (
                isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
            ):
                problems.append("error needs an object with string 'type' and 'message'")
            return problems
        if not self.started and kind != "message_start":
            return [*problems, "comes before message_start"]
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is not None:  # unknown event types are allowed: clients must skip them
            problems.extend(handler(data))
        return problems

    def _message_start(self, data: dict[str, Any]) -> list[str]:
        if self.started:
            return ["a second message_start"]
        self.started = True
        message = data.get("message")
        if not isinstance(message, dict):
            return ["message_start without a message object"]
        problems = [
            f"message.{key} must be a string" for key in ("id", "model") if not isinstance(message.get(key), str)
        ]
        expected = {"type": "message", "role": "assistant", "content": [], "stop_reason": None}
        problems += [f"message.{k} must be {v!r}" for k, v in expected.items() if message.get(k, ...) != v]
        usage = message.get("usage")
        if not (isinstance(usage, dict) and isinstance(usage.get("input_tokens"), int)):
            problems.append("message.usage.input_tokens must be an integer")
        return problems

    def _content_block_start(self, data: dict[str, Any]) -> list[str]:
        index, block = data.get("index"), data.get("content_block")
        problems = ["content_block_start after message_delta"] if self.delta_seen else []
        if index != len(self.blocks):
            return [*problems, f"block index {index!r}; the next block is {len(self.blocks)}"]
        if not (isinstance(block, dict) and isinstance(block.get("type"), str)):
            problems.append("content_block needs a string 'type'")
            block = {"type": "?"}
        self.blocks.append(block["type"])
        self.open.add(index)
        return problems

    def _content_block_delta(self, data: dict[str, Any]) -> list[str]:
        index, delta = data.get("index"), data.get("delta")
        if index not in self.open:
            return [f"delta for block {index!r}, which is not open"]
        if not isinstance(delta, dict):
            return ["content_block_delta without a delta object"]
        kind, block = delta.get("type"), self.blocks[index]
        if kind not in _ANTHROPIC_DELTAS:
            return []  # a delta type newer than these rules
        field, allowed = _ANTHROPIC_DELTAS[kind]
        if block in _NOT_TOOL_LIKE if allowed is None else block not in allowed:
            return [f"{kind} for block {index}, a {block} block"]
        if field not in delta:
            return [f"{kind} without '{field}'"]
        if allowed is None:
            if not isinstance(delta[field], str):
                return [f"{kind}.{field} must be a string"]
            self.json.setdefault(index, []).append(delta[field])
        return []

    def _content_block_stop(self, data: dict[str, Any]) -> list[str]:
        index = data.get("index")
        if index not in self.open:
            return [f"stop for block {index!r}, which is not open"]
        self.open.discard(index)
        return _json_problem(f"block {index}'s input", self.json.pop(index, ()))

    def _message_delta(self, data: dict[str, Any]) -> list[str]:
        problems = ["a second message_delta"] if self.delta_seen else []
        if self.open:
            problems.append(f"message_delta while blocks {sorted(self.open)} are open")
        self.delta_seen = True
        delta, usage = data.get("delta"), data.get("usage")
        if not (isinstance(delta, dict) and "stop_reason" in delta):
            problems.append("message_delta needs delta.stop_reason")
        if not (isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int)):
            problems.append("message_delta needs usage.output_tokens")
        return problems

    def _message_stop(self, data: dict[str, Any]) -> list[str]:
        self.ended = True
        return [] if self.delta_seen else ["message_stop without a message_delta before it"]

    def finish(self) -> list[str]:
        return [] if self.ended else ["no terminal event (message_stop or error)"]


class _OpenAIRules:
    def __init__(self) -> None:
        self.id: str | None = None
        self.chunks = 0
        self.finished = self.usage_seen = self.ended = False
        self.tools: dict[int, list[str]] = {}  # tool call index -> argument fragments

    @staticmethod
    def name(sse: ServerSentEvent, payload: Any) -> str:
        if payload is None:
            return "[DONE]"
        return "error" if isinstance(payload, dict) and "error" in payload else "chunk"

    def check(self, sse: ServerSentEvent, data: Any) -> list[str]:
        problems = [] if sse.event is None else [f"unexpected event name {sse.event!r}"]
        if self.ended:
            return [*problems, "comes after the end of the stream"]
        if data is None:
            self.ended = True
            return problems if self.finished else [*problems, "[DONE] before any finish_reason"]
        if not isinstance(data, dict):
            return [*problems, "data is not a JSON object"]
        if "error" in data:
            self.ended = True
            error = data["error"]
            if not (isinstance(error, dict) and isinstance(error.get("message"), str)):
                problems.append("error needs an object with a string 'message'")
            return problems
        problems += self._chunk(data)
        return problems

    def _chunk(self, data: dict[str, Any]) -> list[str]:
        problems = []
        if data.get("object") != "chat.completion.chunk":
            problems.append(f"object is {data.get('object')!r}, not 'chat.completion.chunk'")
        for key, kind in (("id", str), ("created", int), ("model", str), ("choices", list)):
            if not isinstance(data.get(key), kind):
                problems.append(f"{key} must be a {kind.__name__}")
        if self.id is None:
            self.id = data.get("id")
        elif data.get("id") != self.id:
            problems.append(f"id {data.get('id')!r} differs from the first chunk's {self.id!r}")
        self.chunks += 1
        choices = data.get("choices") if isinstance(data.get("choices"), list) else []
        if not choices:
            return problems + self._usage(data.get("usage"))
        if self.usage_seen:
            problems.append("a chunk with choices after the usage chunk")
        for choice in choices:
            problems += self._choice(choice)
        return problems

    def _usage(self, usage: Any) -> list[str]:
        if usage is None:
            return ["a chunk with neither choices nor usage"]
        problems = [] if self.finished else ["the usage chunk comes before finish_reason"]
        self.usage_seen = True
        if not isinstance(usage, dict):
            return [*problems, "usage is not an object"]
        return problems + [
            f"usage.{key} must be an integer"
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            if not isinstance(usage.get(key), int)
        ]

    def _choice(self, choice: Any) -> list[str]:
        if not isinstance(choice, dict) or choice.get("index") != 0:
            return ["a choice other than index 0"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ["choice without a delta object"]
        problems = []
        if self.chunks == 1 and delta.get("role") != "assistant":
            problems.append("the first delta lacks role 'assistant'")
        if self.finished and any(v is not None for k, v in delta.items() if k != "role"):
            problems.append("a delta after finish_reason")
        if not isinstance(delta.get("content"), (str, type(None))):
            problems.append("delta.content must be a string")
        for call in delta.get("tool_calls") or ():
            problems += self._tool_call(call)
        finish = choice.get("finish_reason")
        if finish is not None:
            if finish not in _FINISH_REASONS:
                problems.append(f"unknown finish_reason {finish!r}")
            if self.finished:
                problems.append("a second finish_reason")
            self.finished = True
        return problems

    def _tool_call(self, call: Any) -> list[str]:
        index = call.get("index") if isinstance(call, dict) else None
        if not isinstance(index, int):
            return ["a tool call delta without an integer index"]
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        problems = []
        if index not in self.tools:
            if index != len(self.tools):
                problems.append(f"tool call index {index}; the next one is {len(self.tools)}")
            if not isinstance(call.get("id"), str):
                problems.append(f"tool call {index} starts without an id")
            if call.get("type") != "function":
                problems.append(f"tool call {index} starts without type 'function'")
            if not isinstance(function.get("name"), str):
                problems.append(f"tool call {index} starts without function.name")
            self.tools[index] = []
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            problems.append(f"tool call {index}: function.arguments must be a string")
        elif arguments:
            self.tools[index].append(arguments)
        return problems

    def finish(self) -> list[str]:
        problems = []
        for index, fragments in self.tools.items():
            problems += _json_problem(f"tool call {index}'s arguments", fragments)
        if not self.ended:
            problems.append("no terminal event ([DONE] or error)")
        return problems


def _json_problem(what: str, fragments: Any) -> list[str]:
    text = "".join(fragments)
    if not text.strip():
        return []
    try:
        json.loads(text)
    except ValueError as exc:
        return [f"{what} is not valid JSON: {exc}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tornrouter.validate_stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a recorded SSE transcript ('-' for stdin)")
    parser.add_argument("--format", choices=("openai", "anthropic", "responses"), help="detected when omitted")
    args = parser.parse_args(argv)
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as fh:
            data = fh.read()
    problems = validate(data, args.format)
    print("\n".join(problems) if problems else "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
