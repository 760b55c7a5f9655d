"""``POST /v1/messages/count_tokens`` (see ``tornrouter.counting``)."""

from __future__ import annotations

from typing import cast

from ..counting import ESTIMATE, ESTIMATED, count_tokens
from ..formats import codec_for
from ..formats.anthropic.codec import AnthropicCodec
from .base import APIHandler


class CountTokensHandler(APIHandler):
    """Anthropic's token counting: routed as a Messages request, answered by its
    target's upstream or estimated, held to its own rate limit, never billed;
    the PostResponse and End plugins do not run."""

    codec = cast(AnthropicCodec, codec_for("anthropic"))
    endpoint = "/v1/messages/count_tokens"
    explains = False  # counting is already free and sends nothing billable

    async def post(self) -> None:
        self._reading_body = False
        record = self.record
        record.ctx.request = self.codec.parse_count_tokens(self.body())
        self.received(record.request)
        self.admission = await self.runtime.access.admit(record, self.client_key, counting=True)  # 403, 429, 503
        await self.runtime.pipeline.prepare(record)
        body, counted = await count_tokens(record)
        self.set_routing_headers()
        if counted == ESTIMATED:
            self.set_header("x-tornrouter-estimate", ESTIMATE)
        self.set_header("Content-Type", "application/json")
        self.finish(body)
