"""A fake provider on loopback that speaks both upstream APIs for real.

``POST /v1/chat/completions`` and ``/chat/completions`` answer as OpenAI does,
``POST /v1/messages`` as Anthropic does.  Every request is recorded (path,
headers, parsed body).  By default each answers with a canned success built
from the request; tests queue ``Reply`` objects to script what comes next:
another body, an error status, a delay, an SSE stream, a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

OPENAI_TEXT = "Hello from the fake OpenAI upstream."
ANTHROPIC_TEXT = "Hello from the fake Anthropic upstream."


@dataclass
class Reply:
    """One scripted answer.  ``body`` is a dict (sent as JSON) or bytes (sent
    as is); ``sse`` a list of raw chunks written one by one, ``chunk_delay``
    apart; ``drop`` closes the connection without an answer."""

    status: int = 200
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    sse: list[bytes] | None = None
    chunk_delay: float = 0.0
    drop: bool = False


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def openai_completion(request: dict[str, Any], text: str = OPENAI_TEXT) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 8,
            "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def anthropic_message(request: dict[str, Any], text: str = ANTHROPIC_TEXT) -> dict[str, Any]:
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "unknown"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2,
            "service_tier": "standard",
        },
    }


class _Handler(tornado.web.RequestHandler):
    def initialize(self, upstream: FakeUpstream, kind: str) -> None:
        self.upstream = upstream
        self.kind = kind

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = self.request.body
        self.upstream.requests.append(Recorded(self.request.path, dict(self.request.headers), body))
        reply = self.upstream.script.popleft() if self.upstream.script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            self.request.connection.stream.close()
            return
        self.set_status(reply.status)
        for name, value in reply.headers.items():
            self.set_header(name, value)
        if reply.sse is not None:
            await self._stream(reply)
            return
        payload = reply.body
        if payload is None:
            payload = openai_completion(body) if self.kind == "openai" else anthropic_message(body)
        if isinstance(payload, dict):
            self.set_header("Content-Type", "application/json")
            payload = json.dumps(payload).encode()
        self.finish(payload)

    async def _stream(self, reply: Reply) -> None:
        self.set_header("Content-Type", "text/event-stream")
        for chunk in reply.sse or []:
            self.write(chunk)
            await self.flush()
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
        self.finish()


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Reply] = deque()
        self.server: HTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> FakeUpstream:
        """Queue replies for the next requests, in order."""
        self.script.extend(replies)
        return self

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeUpstream:
        app = tornado.web.Application(
            [
                (r"/v1/chat/completions", _Handler, {"upstream": self, "kind": "openai"}),
                (r"/chat/completions", _Handler, {"upstream": self, "kind": "openai"}),
                (r"/v1/messages", _Handler, {"upstream": self, "kind": "anthropic"}),
            ]
        )
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()
