"""The built-in classifiers read canonical fields, whichever API the client spoke."""

from __future__ import annotations

import json

import pytest

from tornrouter.canonical import ChatRequest, Message, Reasoning, Text
from tornrouter.classifiers.builtin import ThinkingRequested, WebSearch
from tornrouter.formats import codec_for


@pytest.mark.parametrize(
    ("reasoning", "tagged"),
    [
        (None, False),
        (Reasoning("enabled", budget_tokens=2048), True),  # Anthropic thinking
        (Reasoning("adaptive"), True),
        (Reasoning("disabled"), False),
        (Reasoning("enabled", "high"), True),  # OpenAI reasoning_effort
        (Reasoning("enabled", "minimal"), False),
        (Reasoning("disabled", "none"), False),
    ],
)
def test_thinking_reads_the_requests_reasoning(reasoning: Reasoning | None, tagged: bool) -> None:
    request = ChatRequest("m", "openai", [Message("user", [Text("hi")])], reasoning=reasoning)
    assert ThinkingRequested({}).matches(request) is tagged


@pytest.mark.parametrize(
    ("api", "body", "tagged"),
    [
        ("openai", {"web_search_options": {"search_context_size": "low"}}, True),
        ("openai", {}, False),
        ("anthropic", {"max_tokens": 10, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, True),
        ("anthropic", {"max_tokens": 10}, False),
    ],
)
def test_web_search_reads_canonical_fields(api: str, body: dict, tagged: bool) -> None:
    wire = {"model": "m", "messages": [{"role": "user", "content": "news?"}], **body}
    request = codec_for(api).parse_request(json.dumps(wire).encode())
    assert WebSearch({}).matches(request) is tagged
    assert "web_search_options" not in request.extra  # a canonical field, not a wire leftover
    assert codec_for(api).encode_request(request)[0] == wire  # and relayed to its own API as sent
