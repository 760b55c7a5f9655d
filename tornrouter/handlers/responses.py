"""``POST /v1/responses`` with the router's stored responses
(``tornrouter.responses_store``), and ``POST /v1/responses/input_tokens``.

A request that names ``previous_response_id`` gets the stored conversation put
in front of its own ``input`` before it is decoded, so that every upstream,
of whatever API, gets the whole conversation and no id it never issued.  A
request that does not say ``store: false`` has its answer kept, with its own
input, just before the client gets the answer (a stream's, from its final
``response.completed`` or ``response.incomplete`` event as written), so that a
client naming it at once finds it.  A request that does neither (Codex sends
every turn whole with ``store: false``) is parsed once and touches no store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from ..canonical import ChatRequest
from ..errors import RouterError
from ..formats import codec_for
from ..responses_store import as_input_items
from ..sse import SSEDecoder
from .base import APIHandler

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("tornrouter")
KEPT_EVENTS = frozenset({"response.completed", "response.incomplete"})


class ResponsesHandler(APIHandler):
    """``POST /v1/responses``: the OpenAI Responses API."""

    codec = codec_for("responses")
    endpoint = "/v1/responses"

    def initialize(self, runtime: Runtime) -> None:
        super().initialize(runtime)
        self.own_input: list[Any] | None = None  # the request's own items, when its answer is to be kept
        self.previous: str | None = None
        self._sent: SSEDecoder | None = None  # a kept stream's bytes, read for its final response

    async def read_request(self) -> ChatRequest:
        raw = self.body()
        request = self.codec.parse_request(raw)  # a bad body is refused before any store is read
        previous = request.extra.get("previous_response_id")
        keep = request.extra.get("store") is not False
        if previous is None and not keep:
            return request
        body = orjson.loads(raw)
        own = as_input_items(body.get("input"))
        if keep:
            self.own_input = own
            self._sent = SSEDecoder() if request.stream else None
        if previous is None:
            return request
        self.previous = previous
        body["input"] = await self.runtime.responses.load(previous, self.record.key_name) + own  # 400, 503
        return self.codec.parse_request(orjson.dumps(body))

    async def answering(self, answer: dict[str, Any]) -> None:
        if self.previous is not None:  # a Responses upstream echoes what it got: no id
            answer["previous_response_id"] = self.previous
        await self.keep(answer)

    async def keep(self, answer: dict[str, Any]) -> None:
        """Store ``answer`` (unless the request said ``store: false``); a store
        that fails costs the client nothing but the stored copy."""
        if self.own_input is None:
            return
        try:
            await self.runtime.responses.save(answer, self.own_input, self.record.key_name,
                                              previous_response_id=self.previous)
        except RouterError as error:  # the store is down: the answer goes out all the same
            log.warning("%s %s: answer not stored: %s", self.endpoint, self.record.id, error.message)
        except Exception:  # noqa: BLE001 - keeping the answer is a side effect; the answer goes out
            log.exception("%s %s: storing the answer failed", self.endpoint, self.record.id)

    async def _send(self, data: bytes) -> None:
        if self._sent is not None and data:
            for event in self._sent.feed(data):
                if event.event in KEPT_EVENTS:
                    await self.keep(event.json()["response"])
        await super()._send(data)
