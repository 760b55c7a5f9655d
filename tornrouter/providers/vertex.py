"""Google Vertex AI: Claude through ``rawPredict``/``streamRawPredict`` with
Anthropic's body (``anthropic_version: vertex-2023-10-16``, the model in the
URL), Gemini through ``generateContent``/``streamGenerateContent?alt=sse`` with
the Gemini codec, at
``{base_url}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}``.
``base_url`` defaults to the region's endpoint (``https://{region}-aiplatform.googleapis.com``,
``https://aiplatform.googleapis.com`` for ``global``).  Auth: a Google access
token from ``google_auth.GoogleToken`` (the ``vertex`` extra).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..canonical import ChatRequest
from ..config import ProviderConfig
from .anthropic import AnthropicProvider
from .base import Provider
from .bearer import BearerAuth
from .gemini import GeminiProvider

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
# The endpoints of the regions that are not one region (as Anthropic's Vertex client has them).
MULTI_REGION_HOSTS = {
    "global": "https://aiplatform.googleapis.com",
    "us": "https://aiplatform.us.rep.googleapis.com",
    "eu": "https://aiplatform.eu.rep.googleapis.com",
}


def models_url(config: ProviderConfig) -> str:
    region = config.region or ""
    base = config.base_url or MULTI_REGION_HOSTS.get(region) or f"https://{region}-aiplatform.googleapis.com"
    return (f"{base.rstrip('/')}/v1/projects/{quote(config.project or '', safe='')}/locations/{quote(region, safe='')}"
            f"/publishers/{config.publisher}/models")


class _Vertex(BearerAuth):
    kind = "vertex"

    def _vertex_setup(self, config: ProviderConfig) -> None:
        from .google_auth import GoogleToken  # the vertex extra, imported only when one is configured

        self.url = models_url(config)
        self.token_source = GoogleToken(config.name, config.credentials_file)


class VertexAnthropicProvider(_Vertex, AnthropicProvider):
    """Claude on Vertex: Anthropic's Messages body, but its version in the body
    and its model in the URL."""

    counts_tokens = False  # no Anthropic count_tokens at this URL: the router estimates
    relays_errors = False  # Google's errors as much as Anthropic's

    @property
    def vendor(self) -> str:
        return "anthropic"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        self._vertex_setup(config)

    def auth_headers(self) -> dict[str, str]:
        return {}

    def endpoint(self, request: ChatRequest) -> str:
        method = "streamRawPredict" if request.stream else "rawPredict"
        return f"{self.url}/{quote(request.model, safe='-._~@')}:{method}"

    def encode(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        body, lossy = super().encode(request)
        del body["model"]
        body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        return body, lossy


class VertexGeminiProvider(_Vertex, GeminiProvider):
    """Gemini on Vertex: the Gemini API's bodies and streams at Vertex's URL."""

    @property
    def vendor(self) -> str:
        return "gemini"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        self._vertex_setup(config)

    def auth_headers(self) -> dict[str, str]:
        return {}


def vertex_provider(config: ProviderConfig, http: Any) -> Provider:
    """The provider of the configured ``publisher``."""
    cls = VertexGeminiProvider if config.publisher == "google" else VertexAnthropicProvider
    return cls(config, http)
