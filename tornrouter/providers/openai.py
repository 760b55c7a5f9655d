"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, LM Studio...): only
``base_url`` differs; ``api_key`` is optional for local servers."""

from __future__ import annotations

from .base import HTTPProvider


class OpenAIProvider(HTTPProvider):
    kind = "openai"
    format = "openai"
    path = "/chat/completions"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
