"""Wire formats: pure codecs between an API's JSON and the canonical model.

``codec_for(name)`` gives the codec of ``openai`` or ``anthropic``; both follow
``formats.base.Codec``.
"""

from __future__ import annotations

from .anthropic.codec import AnthropicCodec
from .base import Codec
from .openai.codec import OpenAICodec

CODECS: dict[str, Codec] = {"openai": OpenAICodec(), "anthropic": AnthropicCodec()}


def codec_for(name: str) -> Codec:
    return CODECS[name]
