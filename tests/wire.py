"""Request bodies as clients send them, for the three APIs the router serves.

``chat`` is an OpenAI Chat Completions body, ``message`` an Anthropic
Messages body and ``response`` an OpenAI Responses body, each with one user
message; ``extra`` adds or overrides top-level fields (``stream=True``,
``tools=[...]``).  ``body_for`` picks the one the endpoint ``path`` speaks.
"""

from __future__ import annotations

from typing import Any

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
RESPONSES = "/v1/responses"
# The API an endpoint speaks, by the name of its format (the provider kinds
# that speak them: openai, anthropic, openai-responses).
KIND = {OPENAI: "openai", ANTHROPIC: "anthropic", RESPONSES: "responses"}


def chat(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """An OpenAI Chat Completions request: ``text`` from the user to ``model``."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def message(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """An Anthropic Messages request: ``text`` from the user to ``model``, with
    the ``max_tokens`` the API requires (100 unless ``extra`` says otherwise)."""
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


def response(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """An OpenAI Responses request: ``text`` from the user to ``model``."""
    return {"model": model, "input": text, **extra}


def body_for(path: str, model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """``chat``, ``message`` or ``response``: the body the endpoint ``path`` takes."""
    return {OPENAI: chat, ANTHROPIC: message, RESPONSES: response}[path](model, text, **extra)
