"""Providers whose requests carry a bearer token that expires: Azure's Entra ID
tokens (``tokens.BearerToken``), Google's access tokens (``google_auth``).

``BearerAuth`` goes before ``HTTPProvider`` in a provider's bases: it gets a
fresh token (``source.get()``, which may run a command or an HTTP refresh off
the event loop) before each request, sends it as ``Authorization: Bearer``,
and keeps it out of every error body the provider quotes.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..canonical import ChatRequest, ChatResponse
from .streaming import EventStream


class TokenSource(Protocol):
    current: str | None  # the token last got (None before the first)

    async def get(self) -> str:
        """A token valid for a while yet; ``UpstreamError`` when there is none."""


class BearerAuth:
    """The mixin; ``token_source`` is None when the provider authenticates otherwise (a key)."""

    token_source: TokenSource | None = None

    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        if self.token_source is not None:
            await self.token_source.get()
        return await super().send(request)  # type: ignore[misc]

    async def open_stream(self, request: ChatRequest) -> tuple[EventStream, list[str]]:
        if self.token_source is not None:
            await self.token_source.get()
        return await super().open_stream(request)  # type: ignore[misc]

    def build(self, request: ChatRequest) -> tuple[Any, list[str]]:
        http_request, lossy = super().build(request)  # type: ignore[misc]
        if self.token_source is not None and self.token_source.current is not None:
            # The request's own headers (a client's anthropic-beta...), and the token.
            http_request.headers = {**http_request.headers, "Authorization": f"Bearer {self.token_source.current}"}
        return http_request, lossy

    def redacted(self, body: bytes) -> bytes:
        body = super().redacted(body)  # type: ignore[misc]
        if self.token_source is not None and self.token_source.current:
            body = body.replace(self.token_source.current.encode(), b"***")
        return body
