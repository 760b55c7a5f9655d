"""The request fields a log entry keeps beside its messages: those routing may
read (the classifiers look at tools, reasoning, web search; the cache at the
temperature) and those a request cannot be sent again without (``max_tokens``
for the Messages API).  Compact: names, not schemas, so the log stays small
and holds no tool's full definition.  ``tornrouter replay`` rebuilds a request
from them (``replay/rebuild.py``)."""

from __future__ import annotations

from typing import Any

from .canonical import ChatRequest


def request_shape(request: ChatRequest) -> dict[str, Any]:
    shape: dict[str, Any] = {"api": request.source}
    if request.max_tokens is not None:
        shape["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        shape["temperature"] = request.temperature
    if request.tools:
        shape["tools"] = [tool.name for tool in request.tools]
        hosted = {tool.name: tool.builtin for tool in request.tools if tool.builtin is not None}
        if hosted:
            shape["hosted_tools"] = hosted  # name -> its wire type (web_search_20250305...)
    if request.tool_choice is not None:
        shape["tool_choice"] = request.tool_choice.mode
    if request.reasoning is not None:
        reasoning = request.reasoning
        shape["reasoning"] = {k: v for k, v in (("mode", reasoning.mode), ("effort", reasoning.effort),
                                                ("budget_tokens", reasoning.budget_tokens)) if v is not None}
    if request.web_search is not None:
        shape["web_search"] = True
    return shape
