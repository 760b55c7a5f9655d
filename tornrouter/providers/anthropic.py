"""Anthropic's Messages API (``base_url`` without ``/v1``, as the SDK takes it)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..canonical import ChatRequest
from .base import HTTPProvider

BETA = "anthropic-beta"


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"
    path = "/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def request_headers(self, request: ChatRequest, lossy: list[str]) -> dict[str, str]:
        """With ``betas:`` configured, the ``anthropic-beta`` flags adjusted as it
        says (``config.BetasConfig``), whoever the client is."""
        headers = super().request_headers(request, lossy)
        betas = self.config.betas
        if betas is None:
            return headers
        if betas.override is not None:
            flags = list(betas.override)
        else:
            sent = (flag.strip() for flag in headers.get(BETA, "").split(","))
            flags = [flag for flag in sent if flag and not any(fnmatchcase(flag, glob) for glob in betas.strip)]
        flags += [flag for flag in betas.add if flag not in flags]
        headers = {name: value for name, value in headers.items() if name != BETA}
        if flags:
            headers[BETA] = ",".join(flags)
        return headers
