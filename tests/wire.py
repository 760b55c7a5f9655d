"""Request bodies as clients send them, for the two APIs the router serves.

``chat`` is an OpenAI Chat Completions body and ``message`` an Anthropic
Messages body, each with one user message; ``extra`` adds or overrides
top-level fields (``stream=True``, ``tools=[...]``).  ``body_for`` picks the one
the endpoint ``path`` speaks.
"""

from __future__ import annotations

from typing import Any

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
KIND = {OPENAI: "openai", ANTHROPIC: "anthropic"}  # the API an endpoint speaks, by the provider kind that speaks it


def chat(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """An OpenAI Chat Completions request: ``text`` from the user to ``model``."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def message(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """An Anthropic Messages request: ``text`` from the user to ``model``, with
    the ``max_tokens`` the API requires (100 unless ``extra`` says otherwise)."""
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}


def body_for(path: str, model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    """``chat`` for the OpenAI endpoint, ``message`` for the Anthropic one."""
    return chat(model, text, **extra) if path == OPENAI else message(model, text, **extra)
