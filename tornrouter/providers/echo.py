"""The ``echo`` provider kind: deterministic answers built from the request,
with no network and no key.  For trying routing, plugins and clients offline,
and for tests.

It answers ``echo: <last user text>``; a user text of the form
``/tool NAME {"json": "args"}`` makes it call the offered tool NAME instead, so
tool-using clients can be exercised too.
"""

from __future__ import annotations

import json

from ..canonical import ChatRequest, ChatResponse, Text, ToolCall, Usage, new_id
from ..classifiers.builtin import CHARS_PER_TOKEN, estimate_input_tokens
from ..accumulate import replay
from .base import Provider
from .streaming import EventStream, ReplayStream


class EchoProvider(Provider):
    kind = "echo"

    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        return self.answer(request), []

    async def open_stream(self, request: ChatRequest) -> tuple[EventStream, list[str]]:
        return ReplayStream(replay(self.answer(request), text_piece=12)), []

    def answer(self, request: ChatRequest) -> ChatResponse:
        text = request.last_user_text()
        call = self._tool_call(text, request)
        if call is not None:
            content, stop = [call], "tool_use"
            output_chars = len(call.name) + len(json.dumps(call.input))
        else:
            reply = f"echo: {text}"
            if request.max_tokens is not None and len(reply) > request.max_tokens * CHARS_PER_TOKEN:
                reply, stop = reply[: request.max_tokens * CHARS_PER_TOKEN], "max_tokens"
            else:
                stop = "end_turn"
            content, output_chars = [Text(reply)], len(reply)
        usage = Usage(input_tokens=max(1, estimate_input_tokens(request)), output_tokens=max(1, output_chars // CHARS_PER_TOKEN))
        return ChatResponse(id=new_id("msg"), model=request.model, content=content, stop_reason=stop, usage=usage)

    @staticmethod
    def _tool_call(text: str, request: ChatRequest) -> ToolCall | None:
        if not text.startswith("/tool ") or not request.tools:
            return None
        name, _, args = text[len("/tool "):].partition(" ")
        if name not in {t.name for t in request.tools}:
            return None
        try:
            arguments = json.loads(args) if args.strip() else {}
        except ValueError:
            arguments = {"text": args}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        return ToolCall(id=new_id("toolu"), name=name, input=arguments)
