"""Google AI Studio's Gemini API: ``POST {base_url}/models/{model}:generateContent``,
or ``:streamGenerateContent?alt=sse`` for a stream, with the key in
``x-goog-api-key`` (``base_url`` with the API version,
``https://generativelanguage.googleapis.com/v1beta``).

The model is in the URL, not the body.  Thought signatures of function calls
are kept by call id (``signatures.py``) and sent back with the calls; an
Anthropic client gets them in its thinking blocks as well (``formats.gemini``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..canonical import ChatRequest, ChatResponse
from ..config import ProviderConfig
from ..formats.gemini.decode import PartReader
from ..formats.gemini.stream import GeminiStreamDecoder
from .base import HTTPProvider
from .signatures import SignatureStore


class GeminiProvider(HTTPProvider):
    kind = "gemini"
    format = "gemini"
    path = "/models"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        self.signatures = SignatureStore()

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.config.api_key} if self.config.api_key else {}

    def endpoint(self, request: ChatRequest) -> str:
        model = quote(request.model.removeprefix("models/"), safe="-._~@")
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return f"{self.url}/{model}:{method}"

    def encode(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        return self.codec.encode_request(request, signatures=self.signatures)

    def reader(self, request: ChatRequest) -> PartReader:
        """Signatures go in thinking blocks only for a client that returns them."""
        return PartReader(carry_signatures=request.source == "anthropic", on_signature=self.signatures.put)

    def decode(self, payload: Any, request: ChatRequest) -> ChatResponse:
        return self.codec.decode_response(payload, self.reader(request))

    def stream_decoder(self, request: ChatRequest) -> GeminiStreamDecoder:
        return self.codec.stream_decoder(self.reader(request))
