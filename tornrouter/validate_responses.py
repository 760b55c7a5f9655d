"""The Responses API's stream rules, for ``validate_stream``.

Every event is named (``event:``, equal to its data's ``type``) and numbered:
``sequence_number`` counts up by one.  ``response.created`` comes first (or
an ``error``), then output items one at a time, each added at the next
``output_index`` and done before the next is added; inside an item its parts
(a message's content parts, a reasoning item's summary parts) one at a time,
at the next index, each delta naming its item, output and part, each
``.done`` repeating what the deltas built.  ``response.completed`` (status
``completed``), ``response.incomplete`` or ``response.failed`` ends the
stream, or an ``error`` event; nothing follows.  Event types these rules do
not know (a hosted tool's progress) are allowed where an item may be open.
"""

from __future__ import annotations

import json
from typing import Any

from .sse import ServerSentEvent

_TERMINAL_STATUS = {"response.completed": "completed", "response.incomplete": "incomplete", "response.failed": "failed"}
# delta event -> (the open thing it extends, its field); done event -> (the thing, the field that repeats it)
_DELTAS = {
    "response.output_text.delta": ("output_text", "delta"),
    "response.refusal.delta": ("refusal", "delta"),
    "response.function_call_arguments.delta": ("function_call", "delta"),
    "response.reasoning_summary_text.delta": ("summary_text", "delta"),
}
_DONES = {
    "response.output_text.done": ("output_text", "text"),
    "response.refusal.done": ("refusal", "refusal"),
    "response.function_call_arguments.done": ("function_call", "arguments"),
    "response.reasoning_summary_text.done": ("summary_text", "text"),
}


class ResponsesRules:
    def __init__(self) -> None:
        self.sequence: int | None = None
        self.response_id: str | None = None
        self.ended = False
        self.items: list[dict[str, Any]] = []  # by output_index, as added
        self.open_item: int | None = None
        self.part: tuple[str, int] | None = None  # the open part: its type and index
        self.parts = 0  # parts of the open item begun
        self.text: list[str] = []  # what the open part's (or call's) deltas built

    @staticmethod
    def name(sse: ServerSentEvent, payload: Any) -> str:
        return sse.event or (payload.get("type") if isinstance(payload, dict) else None) or "message"

    def check(self, sse: ServerSentEvent, data: Any) -> list[str]:
        if not isinstance(data, dict):
            return ["data is not a JSON object"]
        kind = data.get("type")
        problems = [] if sse.event == kind else [f"event name {sse.event!r} differs from data type {kind!r}"]
        problems += self._sequence(data.get("sequence_number"))
        if self.ended:
            return [*problems, "comes after the end of the stream"]
        if kind == "error":
            self.ended = True
            error = data.get("error") if isinstance(data.get("error"), dict) else data
            return problems + ([] if isinstance(error.get("message"), str) else ["error needs a string 'message'"])
        if self.response_id is None and kind != "response.created":
            return [*problems, "comes before response.created"]
        handler = getattr(self, "_" + kind.replace(".", "_"), None) if isinstance(kind, str) else None
        if kind in _TERMINAL_STATUS:
            problems += self._terminal(kind, data)
        elif kind in _DELTAS:
            problems += self._delta(kind, data)
        elif kind in _DONES:
            problems += self._done(kind, data)
        elif handler is not None:
            problems += handler(data)
        return problems

    def _sequence(self, number: Any) -> list[str]:
        if type(number) is not int:
            return ["no integer sequence_number"]
        expected, self.sequence = (None if self.sequence is None else self.sequence + 1), number
        return [] if expected is None or number == expected else [f"sequence_number {number}; expected {expected}"]

    def _response(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        response = data.get("response")
        if not isinstance(response, dict):
            return {}, ["needs a response object"]
        problems = [] if response.get("object") == "response" else ["response.object must be 'response'"]
        if self.response_id is not None and response.get("id") != self.response_id:
            problems.append(f"response.id {response.get('id')!r} differs from the created one's {self.response_id!r}")
        return response, problems

    # --- lifecycle

    def _response_created(self, data: dict[str, Any]) -> list[str]:
        if self.response_id is not None:
            return ["a second response.created"]
        response, problems = self._response(data)
        if not isinstance(response.get("id"), str):
            return [*problems, "response.id must be a string"]
        self.response_id = response["id"]
        if response.get("output") != []:
            problems.append("response.output must be [] at its creation")
        return problems

    def _response_in_progress(self, data: dict[str, Any]) -> list[str]:
        return self._response(data)[1]

    def _terminal(self, kind: str, data: dict[str, Any]) -> list[str]:
        self.ended = True
        response, problems = self._response(data)
        status = _TERMINAL_STATUS[kind]
        if response.get("status") != status:
            problems.append(f"response.status must be {status!r}")
        if kind == "response.failed":
            error = response.get("error")
            if not (isinstance(error, dict) and isinstance(error.get("message"), str)):
                problems.append("response.error needs a string 'message'")
            return problems
        if self.open_item is not None:
            problems.append(f"{kind} while output {self.open_item} is open")
        if kind == "response.incomplete" and not isinstance((response.get("incomplete_details") or {}).get("reason"), str):
            problems.append("response.incomplete_details.reason must be a string")
        output = response.get("output")
        if isinstance(output, list) and [i.get("id") for i in output if isinstance(i, dict)] != [i.get("id") for i in self.items]:
            problems.append("response.output differs from the items the stream added")
        usage = response.get("usage")
        if not (isinstance(usage, dict) and all(isinstance(usage.get(k), int) for k in ("input_tokens", "output_tokens", "total_tokens"))):
            problems.append("response.usage needs integer input_tokens, output_tokens and total_tokens")
        return problems

    # --- items and parts

    def _at(self, data: dict[str, Any], *, part: bool = False) -> list[str]:
        """Problems with an event's address: its output (and part) must be the open one."""
        index = data.get("output_index")
        if self.open_item is None or index != self.open_item:
            return [f"for output {index!r}, which is not open"]
        item = self.items[index]
        if "item_id" in data or item.get("type") in ("message", "function_call", "reasoning"):
            if data.get("item_id") != item.get("id"):
                return [f"item_id {data.get('item_id')!r} is not output {index}'s {item.get('id')!r}"]
        if part and (self.part is None or self.part[1] != data.get(self._index_key())):
            return [f"for part {data.get(self._index_key())!r} of output {index}, which is not open"]
        return []

    def _index_key(self) -> str:
        return "summary_index" if self.items[self.open_item or 0].get("type") == "reasoning" else "content_index"

    def _response_output_item_added(self, data: dict[str, Any]) -> list[str]:
        index, item = data.get("output_index"), data.get("item")
        problems = [f"output {index} added while output {self.open_item} is open"] if self.open_item is not None else []
        if index != len(self.items):
            return [*problems, f"output_index {index!r}; the next output is {len(self.items)}"]
        if not (isinstance(item, dict) and isinstance(item.get("type"), str)):
            return [*problems, "item needs a string 'type'"]
        kind = item["type"]
        if kind in ("message", "function_call", "reasoning") and not isinstance(item.get("id"), str):
            problems.append(f"a {kind} item needs a string id")
        if kind == "message" and (item.get("role") != "assistant" or item.get("content") != []):
            problems.append("a message starts with role 'assistant' and content []")
        if kind == "function_call" and not (isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)):
            problems.append("a function_call needs a string call_id and name")
        self.items.append(item)
        self.open_item, self.part, self.parts, self.text = index, None, 0, []
        return problems

    def _response_output_item_done(self, data: dict[str, Any]) -> list[str]:
        problems = self._at({**data, "item_id": (data.get("item") or {}).get("id")})
        if problems:
            return problems
        if self.part is not None:
            problems.append(f"output {self.open_item} done while its part {self.part[1]} is open")
        item = data.get("item") or {}
        if item.get("type") == "message" and len(item.get("content") or []) != self.parts:
            problems.append(f"message output {self.open_item} is done with {len(item.get('content') or [])} parts; it began {self.parts}")
        if item.get("type") == "function_call" and item.get("arguments") != "".join(self.text):
            problems.append("function_call arguments differ from its deltas")
        self.open_item = None
        return problems

    def _part_added(self, data: dict[str, Any], expected: str, key: str) -> list[str]:
        problems = self._at(data)
        if problems:
            return problems
        if self.items[self.open_item or 0].get("type") != expected:
            return [f"a part for output {self.open_item}, a {self.items[self.open_item or 0].get('type')} item"]
        if self.part is not None:
            problems.append(f"part {data.get(key)!r} added while part {self.part[1]} is open")
        if data.get(key) != self.parts:
            return [*problems, f"{key} {data.get(key)!r}; the next part is {self.parts}"]
        part = data.get("part")
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in (("output_text", "refusal") if expected == "message" else ("summary_text",)):
            problems.append(f"part type {kind!r}")
        self.part, self.text = (kind or "?", self.parts), []
        self.parts += 1
        return problems

    def _part_done(self, data: dict[str, Any]) -> list[str]:
        problems = self._at(data, part=True)
        if problems:
            return problems
        part = data.get("part") or {}
        field = "refusal" if part.get("type") == "refusal" else "text"
        if part.get(field) != "".join(self.text):
            problems.append(f"the part's {field} differs from its deltas")
        self.part = None
        return problems

    def _response_content_part_added(self, data: dict[str, Any]) -> list[str]:
        return self._part_added(data, "message", "content_index")

    def _response_content_part_done(self, data: dict[str, Any]) -> list[str]:
        return self._part_done(data)

    def _response_reasoning_summary_part_added(self, data: dict[str, Any]) -> list[str]:
        return self._part_added(data, "reasoning", "summary_index")

    def _response_reasoning_summary_part_done(self, data: dict[str, Any]) -> list[str]:
        return self._part_done(data)

    def _extends(self, kind: str, data: dict[str, Any], target: str) -> list[str]:
        if target == "function_call":
            problems = self._at(data)
            if not problems and self.items[self.open_item or 0].get("type") != "function_call":
                problems = [f"{kind} for output {self.open_item}, a {self.items[self.open_item or 0].get('type')} item"]
            return problems
        problems = self._at(data, part=True)
        if not problems and self.part is not None and self.part[0] != target:
            problems = [f"{kind} for a {self.part[0]} part"]
        return problems

    def _delta(self, kind: str, data: dict[str, Any]) -> list[str]:
        target, field = _DELTAS[kind]
        problems = self._extends(kind, data, target)
        if not problems:
            if isinstance(data.get(field), str):
                self.text.append(data[field])
            else:
                problems.append(f"{field} must be a string")
        return problems

    def _done(self, kind: str, data: dict[str, Any]) -> list[str]:
        target, field = _DONES[kind]
        problems = self._extends(kind, data, target)
        if problems:
            return problems
        text = "".join(self.text)
        if data.get(field) != text:
            problems.append(f"{field} differs from its deltas")
        if target == "function_call" and text.strip():
            try:
                json.loads(text)
            except ValueError as exc:
                problems.append(f"output {self.open_item}'s arguments are not valid JSON: {exc}")
        return problems

    def finish(self) -> list[str]:
        return [] if self.ended else ["no terminal event (response.completed, .incomplete, .failed or error)"]
