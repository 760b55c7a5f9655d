"""Reading an answer as the client got it, from any API: the text of a
whole answer or of a stream, a stream's last event and whether it is the API's
error event, the message of an error body (its shape checked), and which
target the ``x-tornrouter-*`` headers say served."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import HTTPResponse

from tests.wire import ANTHROPIC, OPENAI, RESPONSES
from tornrouter.sse import SSEDecoder


def native_error(path: str, response: HTTPResponse) -> str:
    """The message of an error body in the endpoint's own shape (asserting the shape)."""
    body = json.loads(response.body)
    if path == ANTHROPIC:
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
        return body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]["message"]


def answer_text(path: str, response: HTTPResponse) -> str:
    """The text of a whole (non-streamed) answer, in either API's shape."""
    body = json.loads(response.body)
    if path == ANTHROPIC:
        return "".join(block.get("text", "") for block in body["content"])
    if path == RESPONSES:
        return "".join(p.get("text", "") for item in body["output"] if item["type"] == "message" for p in item["content"])
    return body["choices"][0]["message"]["content"]


def streamed_text(path: str, raw: bytes) -> str:
    """The text a stream carried, in either API's events (``[DONE]`` skipped)."""
    out = []
    for event in SSEDecoder().feed(raw):
        if event.data == "[DONE]":
            continue
        payload = json.loads(event.data)
        if path == ANTHROPIC and payload.get("type") == "content_block_delta":
            out.append(payload["delta"].get("text", ""))
        elif path == RESPONSES and payload.get("type") == "response.output_text.delta":
            out.append(payload["delta"])
        elif path == OPENAI:
            out.extend(choice["delta"].get("content") or "" for choice in payload.get("choices") or ())
    return "".join(out)


def last_event(raw: bytes) -> dict[str, Any]:
    """The payload of a stream's last event but ``[DONE]``."""
    events = [e for e in SSEDecoder().feed(raw) if e.data != "[DONE]"]
    return json.loads(events[-1].data)


def is_error_event(path: str, payload: dict[str, Any]) -> bool:
    """Whether ``payload`` is the endpoint API's error event."""
    if path == RESPONSES:
        return payload.get("type") in ("response.failed", "error")
    return payload.get("type") == "error" if path == ANTHROPIC else "error" in payload


def served_by(response: HTTPResponse, provider_name: str, model: str) -> None:
    """Asserts the ``x-tornrouter-*`` headers name ``provider_name`` and ``model``."""
    assert response.headers["x-tornrouter-provider"] == provider_name
    assert response.headers["x-tornrouter-model"] == model
