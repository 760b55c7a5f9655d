"""Wire formats: pure codecs between an API's JSON and the canonical model.

``codec_for(name)`` gives the codec of ``openai``, ``anthropic`` or
``responses``; each follows ``formats.base.Codec``.
"""

from __future__ import annotations

from .anthropic.codec import AnthropicCodec
from .base import Codec
from .converse.codec import ConverseCodec
from .gemini.codec import GeminiCodec
from .openai.codec import OpenAICodec
from .responses.codec import ResponsesCodec

CODECS: dict[str, Codec] = {"openai": OpenAICodec(), "anthropic": AnthropicCodec(), "responses": ResponsesCodec(),
                           "gemini": GeminiCodec(),
                           "converse": ConverseCodec()}


def codec_for(name: str) -> Codec:
    return CODECS[name]
