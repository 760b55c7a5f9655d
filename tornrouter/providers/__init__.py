"""Provider kinds by config name; ``make_provider`` builds one from its config."""

from __future__ import annotations

from tornado.httpclient import AsyncHTTPClient

from ..config import ProviderConfig
from .anthropic import AnthropicProvider
from .base import Provider
from .azure import AzureProvider
from .echo import EchoProvider
from .gemini import GeminiProvider
from .openai import OpenAIProvider
from .responses import OpenAIResponsesProvider

KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "openai-responses": OpenAIResponsesProvider,
    "anthropic": AnthropicProvider,
    "echo": EchoProvider,
    "gemini": GeminiProvider,
    "azure": AzureProvider,
}


def make_provider(config: ProviderConfig, http: AsyncHTTPClient) -> Provider:
    if config.kind == "bedrock":  # the bedrock extra, imported only when one is configured
        from .bedrock import BedrockProvider

        return BedrockProvider(config, http)
    if config.kind == "vertex":  # one kind, two APIs: the publisher's
        from .vertex import vertex_provider

        return vertex_provider(config, http)
    return KINDS[config.kind](config, http)
