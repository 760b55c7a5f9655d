"""OpenAI's Responses API (``POST {base_url}/responses``), and any server that
speaks it: the chat-completions provider's auth, another path and codec."""

from __future__ import annotations

from .openai import OpenAIProvider


class OpenAIResponsesProvider(OpenAIProvider):
    kind = "openai-responses"
    format = "responses"
    path = "/responses"

    @property
    def vendor(self) -> str:
        return "openai"  # the same models at the same prices as chat completions
