"""A fake Azure OpenAI resource on loopback, checking what Azure checks.

``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` and
``POST /openai/v1/chat/completions`` answer as Azure does: OpenAI's chat
completions with Azure's content-filter results (``prompt_filter_results``,
each choice's ``content_filter_results``; in a stream, a first chunk with no
choices that carries the prompt's).  It refuses, with Azure's error bodies, a
request without the resource's ``api-key`` or the Entra ID token it takes
(401), a deployment path without ``api-version`` (404) and a deployment it
does not have (404).  The plumbing (scripted replies, recorded requests,
misbehaviours) is ``tests/fake_upstream.py``'s.
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.fake_upstream import FakeUpstream, Reply, _Handler, openai_completion, openai_sse, sse_data, stream_text

AZURE_KEY = "azure-test-key-SECRET"
AZURE_TOKEN = "eyJ0eXAi.entra-test-token-SECRET"
AZURE_TEXT = "Hello from the fake Azure OpenAI upstream."
SAFE = {"hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": SAFE}]


def azure_error(status: int, code: str, message: str, **more: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": None, "type": None, "status": status, **more}}


def azure_completion(request: dict[str, Any], text: str = AZURE_TEXT, *, finish: str = "stop") -> dict[str, Any]:
    body = openai_completion(request, text)
    body["prompt_filter_results"] = PROMPT_FILTER
    body["choices"][0]["content_filter_results"] = SAFE
    body["choices"][0]["finish_reason"] = finish
    return body


def azure_sse(text: str, *, model: str = "gpt-4o-2024-11-20", finish: str = "stop") -> list[bytes]:
    """Azure's stream: the prompt's filter results first (no choices), then
    OpenAI's chunks, each with the filter results of what it carries."""
    first = sse_data({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": PROMPT_FILTER})
    chunks = []
    for raw in openai_sse(text, model=model):
        if raw.startswith(b"data: {"):
            chunk = json.loads(raw[6:])
            for choice in chunk.get("choices") or ():
                choice["content_filter_results"] = SAFE if choice["delta"].get("content") else {}
                if choice.get("finish_reason"):
                    choice["finish_reason"] = finish
            raw = sse_data(chunk)
        chunks.append(raw)
    return [first, *chunks]


class _AzureHandler(_Handler):
    async def post(self, deployment: str | None = None) -> None:  # type: ignore[override]
        fake: FakeAzure = self.upstream  # type: ignore[assignment]
        self.deployment = deployment
        refusal = self.refusal(deployment)
        if refusal is not None:
            fake.script.appendleft(refusal)
        await super().post()

    def refusal(self, deployment: str | None) -> Reply | None:
        fake: FakeAzure = self.upstream  # type: ignore[assignment]
        key = self.request.headers.get("api-key")
        bearer = self.request.headers.get("Authorization")
        if key != fake.key and bearer != f"Bearer {fake.token}":
            return Reply(status=401, body={"error": {"code": "401", "message": (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
                "for an active subscription and use a correct regional API endpoint for your resource.")}})
        if deployment is not None:
            if not self.get_query_argument("api-version", None):
                return Reply(status=404, body={"error": {"code": "404", "message": "Resource not found"}})
            if deployment not in fake.deployments:
                return Reply(status=404, body=azure_error(404, "DeploymentNotFound", (
                    "The API deployment for this resource does not exist. If you created the deployment within the "
                    "last 5 minutes, please wait a moment and try again.")))
        return None

    def default_reply(self, body: Any) -> Reply:
        text = stream_text(body, AZURE_TEXT) if body.get("stream") else AZURE_TEXT
        if body.get("stream"):
            return Reply(sse=azure_sse(text), chunk_delay=self.upstream.stream_chunk_delay)
        return Reply(body=azure_completion(body, text))


class FakeAzure(FakeUpstream):
    """``deployments``: the deployment names the resource has; ``key`` and
    ``token``: the api-key and the bearer token it takes."""

    def __init__(self, deployments: tuple[str, ...] = ("prod-gpt4o",), key: str = AZURE_KEY, token: str = AZURE_TOKEN) -> None:
        super().__init__()
        self.deployments = deployments
        self.key = key
        self.token = token

    def start(self) -> FakeAzure:
        app = tornado.web.Application([
            (r"/openai/deployments/([^/]+)/chat/completions", _AzureHandler, {"upstream": self, "kind": "openai"}),
            (r"/openai/v1/chat/completions", _AzureHandler, {"upstream": self, "kind": "openai"}),
        ])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self
