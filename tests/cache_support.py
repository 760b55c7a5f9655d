"""What the response cache's tests share: a config with the cache on every
route, requests the cache may answer (temperature 0), a client for many
requests at once, and the official SDKs' view of an answer (a stream the SDK
read is checked by ``validate_stream`` too, from a copy of its bytes)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2  # the SDKs' HTTP client
import openai
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.configs import base_config
from tests.wire import ANTHROPIC, KIND, OPENAI, body_for
from tornrouter.validate_stream import validate

QUESTION = "What is 2+2?"


def cached(upstream_url: str, log_path: str, **rule: Any) -> dict[str, Any]:
    """``base_config`` with ``cache: {ttl_s: 600, **rule}`` on every route."""
    config = base_config(upstream_url, log_path)
    for route in config["router"]["routes"]:
        route["cache"] = {"ttl_s": 600, **rule}
    return config


def ask(path: str, model: str, text: str = QUESTION, **extra: Any) -> dict[str, Any]:
    """A request the cache may answer: the endpoint's body, at temperature 0."""
    return body_for(path, model, text, **{"temperature": 0, **extra})


def streamed(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as a stream; an OpenAI client asks for the usage, as the SDKs' users do."""
    return {**body, "stream": True, **({"stream_options": {"include_usage": True}} if path == OPENAI else {})}


def outcome(response: HTTPResponse) -> str | None:
    return response.headers.get("x-tornrouter-cache")


def many_client() -> AsyncHTTPClient:
    """A client for many requests at once (Tornado's default queues all but 10)."""
    return AsyncHTTPClient(force_instance=True, max_clients=64)


class _Copied(httpx2.AsyncByteStream):
    def __init__(self, stream: Any, chunks: list[bytes]) -> None:
        self.stream, self.chunks = stream, chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            self.chunks.append(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


class CopyingTransport(httpx2.AsyncBaseTransport):
    """The SDK's own transport, keeping a copy of the bytes of each stream it reads."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.streams: list[list[bytes]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            self.streams.append([])
            response.stream = _Copied(response.stream, self.streams[-1])
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def check(self, path: str) -> int:
        """Asserts every stream read so far is valid for ``path``'s API; how many there were."""
        for chunks in self.streams:
            raw = b"".join(chunks)
            assert validate(raw, KIND[path]) == [], raw
        return len(self.streams)


class SDKAnswer:
    """An answer as an official SDK gives it: its headers, text, stop reason
    and token counts (prompt, cached included; completion)."""

    def __init__(self, headers: Any, text: str, stop: str | None, tokens: tuple[int, int]) -> None:
        self.headers, self.text, self.stop, self.tokens = headers, text, stop, tokens

    def same_answer(self, other: SDKAnswer) -> bool:
        return (self.text, self.stop, self.tokens) == (other.text, other.stop, other.tokens)


async def sdk_answer(url: str, path: str, model: str, *, stream: bool, text: str = QUESTION) -> SDKAnswer:
    """The SDK of ``path``'s API asks ``model`` ``text`` at temperature 0; a
    stream's bytes must be valid for the API."""
    messages = [{"role": "user", "content": text}]
    transport = CopyingTransport()
    try:
        answer = await _ask(url, path, model, messages, stream, httpx2.AsyncClient(transport=transport))
    finally:
        await transport.aclose()
    assert transport.check(path) == (1 if stream else 0)
    return answer


async def _ask(url: str, path: str, model: str, messages: list[dict[str, Any]], stream: bool,
               http: httpx2.AsyncClient) -> SDKAnswer:
    if path == OPENAI:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0, http_client=http)
        try:
            if not stream:
                raw = await client.chat.completions.with_raw_response.create(model=model, messages=messages, temperature=0)
                completion = raw.parse()
                choice = completion.choices[0]
                usage = completion.usage
                return SDKAnswer(raw.headers, choice.message.content, choice.finish_reason,
                                 (usage.prompt_tokens, usage.completion_tokens))
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=messages, temperature=0, stream=True, stream_options={"include_usage": True})
            content, finish, usage = "", None, None
            async for chunk in raw.parse():
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    content += choice.delta.content or ""
                    finish = choice.finish_reason or finish
            return SDKAnswer(raw.headers, content, finish, (usage.prompt_tokens, usage.completion_tokens))
        finally:
            await client.close()
    assert path == ANTHROPIC
    client = anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, http_client=http)
    zero = {"temperature": 0}  # this SDK has no parameter for it; the API still takes it
    try:
        if not stream:
            raw = await client.messages.with_raw_response.create(model=model, max_tokens=100, messages=messages, extra_body=zero)
            headers, message = raw.headers, raw.parse()
            if inspect.isawaitable(message):  # parse() is a coroutine in the newer SDKs
                message = await message
        else:
            async with client.messages.stream(model=model, max_tokens=100, messages=messages, extra_body=zero) as events:
                headers, message = events.response.headers, await events.get_final_message()
        usage = message.usage
        prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
        text = "".join(block.text for block in message.content if block.type == "text")
        return SDKAnswer(headers, text, message.stop_reason, (prompt, usage.output_tokens))
    finally:
        await client.close()
