"""One request of the battery, sent as the router sends it: a canonical
``ChatRequest`` through the provider's ``send`` or ``open_stream``, which
encode it for the upstream's API and decode its answer.

A streamed answer goes through ``ClientStream``, as a client's does, and both
transcripts are checked by ``validate_stream``: the upstream's own events
(when its API has a validator: OpenAI, Anthropic, Responses) and the bytes a
client of the kit's client API would get, relayed or translated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..accumulate import merge_usage
from ..canonical import (
    Block, ChatRequest, ChatResponse, Message, MessageDelta, MessageStart, StreamError, Text, Tool, ToolChoice, Usage,
)
from ..formats import codec_for
from ..handlers.streaming import ClientStream
from ..providers.base import Provider
from ..validate_stream import validate

VALIDATED = frozenset({"openai", "anthropic", "responses"})  # the APIs validate_stream has rules for
DEFAULT_MAX_TOKENS = 512


@dataclass
class Streamed:
    """A streamed answer.  ``response``: as the router assembled it (None if the
    stream never started); ``problems``: what the validators found, each
    prefixed with whose transcript (``upstream``, ``client``); ``usage``: the
    token counts the events carried, read whatever their order."""

    response: ChatResponse | None
    lossy: list[str]
    error: StreamError | None
    problems: list[str] = field(default_factory=list)
    usage: Usage | None = None
    validated: list[str] = field(default_factory=list)  # whose transcripts the validators read


class Probe:
    """Sends the battery's requests to one provider for one model, as a
    client of API ``client`` (the ``source`` of every request)."""

    def __init__(self, provider: Provider, model: str, client: str) -> None:
        self.provider = provider
        self.model = model
        self.client = client

    def request(self, messages: list[Message], **fields: Any) -> ChatRequest:
        fields.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        fields.setdefault("model", self.model)
        return ChatRequest(source=self.client, messages=messages, **fields)

    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        """The whole answer and what the translation lost; ``UpstreamError`` if none."""
        return await self.provider.send(request)

    async def stream(self, request: ChatRequest) -> Streamed:
        """The streamed answer to ``request`` (sent with ``stream`` set), read to
        its end as the router's stream handler reads it."""
        request = dataclasses.replace(request, stream=True)
        stream, lossy = await self.provider.open_stream(request)
        out = ClientStream(codec_for(self.client), request, stream.format, self.provider.name, stream.decoded_from)
        upstream: list[bytes] = []
        client: list[bytes] = []
        start: MessageStart | None = None
        delta: MessageDelta | None = None
        try:
            while not out.finished:
                batch = await stream.next_batch()
                if batch is None:
                    client.append(out.end())
                    break
                for raw, events in batch:
                    if raw is not None:
                        upstream.append(raw)
                    for event in events:
                        if isinstance(event, MessageStart):
                            start = event
                        elif isinstance(event, MessageDelta):
                            delta = event
                client.append(out.feed(batch))
        finally:
            stream.close()
        problems: list[str] = []
        validated = [f"{self.client} client"]
        if upstream and stream.format in VALIDATED:
            validated.insert(0, f"upstream {stream.format}")
            problems += [f"upstream {stream.format} stream: {p}" for p in validate(b"".join(upstream), stream.format)]
        problems += [f"{self.client} client stream: {p}" for p in validate(b"".join(client), self.client)]
        usage = merge_usage(start.usage, delta.usage if delta else None) if start is not None else None
        return Streamed(out.response(), lossy + out.lossy(), out.error, problems, usage, validated)


def user(*content: Block | str) -> Message:
    return Message("user", _blocks(content))


def assistant(*content: Block | str) -> Message:
    return Message("assistant", _blocks(content))


def _blocks(content: tuple[Block | str, ...]) -> list[Block]:
    return [Text(part) if isinstance(part, str) else part for part in content]


WEATHER = Tool(
    name="get_weather",
    description="The current weather in a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
        "additionalProperties": False,
    },
)
PARALLEL = ToolChoice(mode="auto", parallel=True)
