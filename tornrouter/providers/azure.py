"""Azure OpenAI: chat completions at a deployment,
``POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=...``,
or, with ``azure_path: v1``, at ``{base_url}/openai/v1/chat/completions`` with
the deployment as the body's ``model``.  ``deployments`` maps a model name to
its deployment (unmapped: the model's own name).

Auth is the resource's key in ``api-key``, or a Microsoft Entra ID bearer token
(``tokens.BearerToken``: ``token_command`` or ``token_env``).  The wire format
is OpenAI's: Azure's content-filter results (``prompt_filter_results``, a
choice's ``content_filter_results``) reach a chat-completions client as they
came and are reported lossy to the others; a filtered answer's
``finish_reason: content_filter`` is every client's content-filter outcome, and
a filtered prompt's 400 reaches the client with Azure's message.

A stream begins with a chunk of Azure's own, without choices, that carries the
prompt's filter results: it is relayed to a chat-completions client as Azure
sent it (Azure's clients expect it), and read by no one else (``AzureStreamDecoder``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ..canonical import ChatRequest
from ..config import ProviderConfig
from ..sse import ServerSentEvent
from .bearer import BearerAuth
from .openai import OpenAIProvider
from .tokens import BearerToken


class AzureProvider(BearerAuth, OpenAIProvider):
    kind = "azure"
    path = "/openai"
    relays_errors = False  # Azure's error bodies have fields of their own (innererror, status)

    @property
    def vendor(self) -> str:
        return "openai"  # OpenAI's models, at OpenAI's list prices

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        if config.token_command or config.token_env:
            self.token_source = BearerToken(config.name, command=config.token_command, env=config.token_env,
                                            ttl_s=config.token_ttl_s)

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.config.api_key} if self.config.api_key else {}

    def deployment(self, model: str) -> str:
        return self.config.deployments.get(model, model)

    def endpoint(self, request: ChatRequest) -> str:
        if self.config.azure_path == "v1":
            return f"{self.url}/v1/chat/completions"
        deployment = quote(self.deployment(request.model), safe="-._~")
        return f"{self.url}/deployments/{deployment}/chat/completions?api-version={quote(self.config.api_version)}"

    def encode(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        body, lossy = super().encode(request)
        if self.config.azure_path == "v1":
            body["model"] = self.deployment(request.model)
        return body, lossy

    def stream_decoder(self, request: ChatRequest) -> AzureStreamDecoder:
        return AzureStreamDecoder(super().stream_decoder(request))


class AzureStreamDecoder:
    """OpenAI's stream decoder, past Azure's leading prompt-filter chunk (whose
    empty id and model are not the answer's)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def feed_sse(self, sse: ServerSentEvent) -> list[Any]:
        if "prompt_filter_results" in sse.data:
            data = orjson.loads(sse.data)
            if isinstance(data, dict) and not data.get("choices") and not data.get("usage"):
                return []
        return self.inner.feed_sse(sse)

    def close(self) -> list[Any]:
        return self.inner.close()
