"""OpenAI's Responses API (``POST {base_url}/responses``), and any server that
speaks it: the chat-completions provider's auth, another path and codec; and
its count of a request's input tokens (``/responses/input_tokens``)."""

from __future__ import annotations

from typing import Any

import orjson
from tornado.httpclient import HTTPClientError, HTTPRequest

from ..canonical import ChatRequest
from .openai import OpenAIProvider


class OpenAIResponsesProvider(OpenAIProvider):
    kind = "openai-responses"
    format = "responses"
    path = "/responses"

    @property
    def vendor(self) -> str:
        return "openai"  # the same models at the same prices as chat completions

    async def count_input_tokens(self, body: dict[str, Any], request: ChatRequest) -> bytes:
        """``POST {base_url}/responses/input_tokens`` with ``body`` (the
        client's, for ``request``): the upstream's answer as it came.  Fails
        as a request does (``UpstreamError``), without retries: a count is
        cheap to ask again."""
        http_request = HTTPRequest(
            self.url + "/input_tokens", method="POST", headers=self.headers, body=orjson.dumps(body),
            connect_timeout=self.config.connect_timeout_s, request_timeout=self.config.timeout_s,
            decompress_response=True,
        )
        try:
            response = await self.http.fetch(http_request, raise_error=False)
        except HTTPClientError as exc:  # no response at all
            raise self.transport_error(exc) from exc
        if response.code >= 300:
            raise self.status_error(response.code, response.body, response.headers, request)
        return response.body
