"""The built-in classifiers that read one canonical field, whichever API the client spoke."""

from __future__ import annotations

import pytest

from tornrouter.canonical import ChatRequest, Message, Reasoning, Text
from tornrouter.classifiers.builtin import ThinkingRequested


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
