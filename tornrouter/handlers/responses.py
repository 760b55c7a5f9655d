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

``input_tokens`` counts what a request would send: an ``openai-responses``
upstream (the first target the request would be routed to) counts it itself;
for any other the router estimates it (``estimate_input_tokens``: characters
/ 4) and says so in ``x-tornrouter-estimate``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..canonical import ChatRequest
from ..classifiers.builtin import estimate_input_tokens
from ..counting import ESTIMATE
from ..errors import Forbidden, RouterError
from ..formats import codec_for
from ..providers.responses import OpenAIResponsesProvider
from ..responses_store import ResponsesStore, as_input_items
from ..router import split_forced
from ..sse import SSEDecoder
from .base import APIHandler
from .stored_responses import KeyedJSONHandler

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("tornrouter")
KEPT_EVENTS = frozenset({"response.completed", "response.incomplete"})
_NO_PREVIOUS = re.compile(rb'"previous_response_id":\s*null')
RESPONSES = codec_for("responses")


@dataclass(slots=True)
class Parsed:
    """A request as the store sees it: ``body`` the wire JSON (None when the
    request needs no store and was parsed only once), ``own_input`` its own
    items (None: nothing to keep), ``previous`` what it continues."""

    request: ChatRequest
    body: dict[str, Any] | None = None
    own_input: list[Any] | None = None
    previous: str | None = None


async def parse(raw: bytes, store: ResponsesStore, key_name: str | None) -> Parsed:
    """``raw`` parsed, with the conversation ``previous_response_id`` names in
    front of its input.  A bad body is refused (400) before any store is read;
    an unknown previous response is a 400, a store that cannot be read a 503."""
    request = RESPONSES.parse_request(raw)
    previous = request.extra.get("previous_response_id")
    keep = request.extra.get("store") is not False
    if previous is None and not keep:
        return Parsed(request)
    body = orjson.loads(raw)
    own = as_input_items(body.get("input"))
    if previous is None:
        return Parsed(request, body, own)
    body["input"] = await store.load(previous, key_name) + own
    return Parsed(RESPONSES.parse_request(orjson.dumps(body)), body, own if keep else None, previous)


class ResponsesHandler(APIHandler):
    """``POST /v1/responses``: the OpenAI Responses API."""

    codec = RESPONSES
    endpoint = "/v1/responses"

    def initialize(self, runtime: Runtime) -> None:
        super().initialize(runtime)
        self.parsed: Parsed | None = None
        self._sent: SSEDecoder | None = None  # a kept stream's bytes, read for its final response

    async def read_request(self) -> ChatRequest:
        self.parsed = await parse(self.body(), self.runtime.responses, self.record.key_name)
        if self.parsed.own_input is not None and self.parsed.request.stream:
            self._sent = SSEDecoder()
        return self.parsed.request

    async def answering(self, answer: dict[str, Any]) -> None:
        if self.parsed is not None and self.parsed.previous is not None:
            answer["previous_response_id"] = self.parsed.previous  # a Responses upstream echoes what it got: none
        await self.keep(answer)

    async def keep(self, answer: dict[str, Any]) -> None:
        """Store ``answer`` (unless the request said ``store: false``); a store
        that fails costs the client nothing but the stored copy."""
        parsed = self.parsed
        if parsed is None or parsed.own_input is None:
            return
        try:
            await self.runtime.responses.save(answer, parsed.own_input, self.record.key_name,
                                              previous_response_id=parsed.previous)
        except RouterError as error:  # the store is down: the answer goes out all the same
            log.warning("%s %s: answer not stored: %s", self.endpoint, self.record.id, error.message)
        except Exception:  # noqa: BLE001 - keeping the answer is a side effect; the answer goes out
            log.exception("%s %s: storing the answer failed", self.endpoint, self.record.id)

    async def _send(self, data: bytes) -> None:
        parsed = self.parsed
        if parsed is not None and parsed.previous is not None and data:
            # A stream relayed from a Responses upstream echoes what that upstream
            # got: no previous_response_id.  A quote in a JSON string is escaped,
            # so only the key itself matches.
            data = _NO_PREVIOUS.sub(b'"previous_response_id":' + orjson.dumps(parsed.previous), data)
        if self._sent is not None and data:
            for event in self._sent.feed(data):
                if event.event in KEPT_EVENTS:
                    await self.keep(event.json()["response"])
        await super()._send(data)


class InputTokensHandler(KeyedJSONHandler):
    """``POST /v1/responses/input_tokens``: ``{"object": "response.input_tokens",
    "input_tokens": N}``, the upstream's count or the router's estimate."""

    async def post(self) -> None:
        runtime, key = self.runtime, self.client_key
        parsed = await parse(self.request.body, runtime.responses, self.key_name)
        request = parsed.request
        if key is not None and not key.may_use(request.model):
            raise Forbidden(f"key '{key.name}' may not use model '{request.model}'", param="model")
        forced, model = split_forced(request.model)
        tags = await runtime.pipeline.classifiers.classify(request)
        target = runtime.router.resolve(model, tags, forced).candidates[0]
        self.set_header("x-tornrouter-provider", target.provider.name)
        if isinstance(target.provider, OpenAIResponsesProvider):
            body = parsed.body if parsed.body is not None else orjson.loads(self.request.body)
            body.pop("previous_response_id", None)  # its conversation is in the input now
            self.set_header("Content-Type", "application/json")
            self.finish(await target.provider.count_input_tokens({**body, "model": target.model}, request))
            return
        self.set_header("x-tornrouter-estimate", ESTIMATE)
        self.answer({"object": "response.input_tokens", "input_tokens": estimate_input_tokens(request)})
