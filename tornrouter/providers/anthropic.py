"""Anthropic's Messages API (``base_url`` without ``/v1``, as the SDK takes it)."""

from __future__ import annotations

from .base import HTTPProvider


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"
    format = "anthropic"
    path = "/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers
