"""Anthropic's Messages API (``base_url`` without ``/v1``, as the SDK takes it)."""

from __future__ import annotations

from fnmatch import fnmatchcase

import orjson
from tornado.httpclient import HTTPClientError, HTTPRequest

from ..canonical import ChatRequest
from ..errors import UpstreamError
from ..formats.base import short
from .base import HTTPProvider

BETA = "anthropic-beta"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicProvider(HTTPProvider):
    kind = "anthropic"
    format = "anthropic"
    path = "/v1/messages"
    counts_tokens = True

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    async def count_tokens(self, request: ChatRequest) -> tuple[int, bytes]:
        """``POST /v1/messages/count_tokens``: one call, no retries."""
        body, lossy = self.codec.encode_count_tokens(request)
        http_request = HTTPRequest(
            self.config.base_url.rstrip("/") + COUNT_TOKENS_PATH,
            method="POST",
            headers=self.request_headers(request, lossy),
            body=orjson.dumps(body),
            connect_timeout=self.config.connect_timeout_s,
            request_timeout=self.config.timeout_s,
            decompress_response=True,
        )
        try:
            response = await self.http.fetch(http_request, raise_error=False)
        except HTTPClientError as exc:
            raise self.transport_error(exc) from exc
        if response.code >= 300:
            raise self.status_error(response.code, response.body, response.headers, request)
        try:
            count = orjson.loads(response.body)["input_tokens"]
        except (ValueError, TypeError, KeyError) as exc:
            raise UpstreamError(self.name, f"invalid count_tokens body: {short(response.body)}") from exc
        if type(count) is not int or count < 0:
            raise UpstreamError(self.name, f"invalid count_tokens body: {short(response.body)}")
        return count, response.body

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
