"""``check_request``: the forms a plugin may write, and what it refuses, by field."""

from __future__ import annotations

import pytest

from tornrouter.canonical import ChatRequest, Message, Reasoning, Text, Tool, ToolChoice, ToolResult
from tornrouter.check import check_request


def request() -> ChatRequest:
    return ChatRequest("gpt-4o", "openai", [Message("user", [Text("hi")])], system=[Text("house rules")])


def test_strings_become_text_blocks():
    r = request()
    r.system = "be brief"
    r.messages[0].content.append("and polite")
    r.messages.append(Message("assistant", "ok"))
    r.messages.append(Message("user", [ToolResult("call_1", "42")]))
    r.messages.append(Message("user", ""))
    check_request(r)
    assert r.system == [Text("be brief")]
    assert r.messages[0].content == [Text("hi"), Text("and polite")]
    assert r.messages[1].content == [Text("ok")]
    assert r.messages[2].content == [ToolResult("call_1", [Text("42")])]
    assert r.messages[3].content == []


BROKEN = {
    "messages.1: expected a Message, got int": lambda r: r.messages.append(42),
    "messages.0.content.1: expected a content block, got int": lambda r: r.messages[0].content.append(42),
    "messages.0.content.0.text: expected a string, got NoneType": lambda r: setattr(r.messages[0].content[0], "text", None),
    "messages.0.role: expected one of assistant, developer, system, user, got 'bot'": lambda r: setattr(r.messages[0], "role", "bot"),
    "system: expected a list or a string, got NoneType": lambda r: setattr(r, "system", None),
    "system.1: expected a text block, got ToolResult": lambda r: r.system.append(ToolResult("call_1")),
    "max_tokens: expected an integer or None, got str": lambda r: setattr(r, "max_tokens", "lots"),
    "max_tokens: expected an integer or None, got bool": lambda r: setattr(r, "max_tokens", True),
    "temperature: expected a number or None, got str": lambda r: setattr(r, "temperature", "0.5"),
    "stop.0: expected a string, got int": lambda r: setattr(r, "stop", [1]),
    "reasoning: expected a Reasoning or None, got str": lambda r: setattr(r, "reasoning", "high"),
    "reasoning.mode: expected one of adaptive, disabled, enabled, got 'on'": lambda r: setattr(r, "reasoning", Reasoning("on")),
    "reasoning.budget_tokens: expected an integer or None, got str": lambda r: setattr(r, "reasoning", Reasoning(budget_tokens="4k")),
    "tools.0.parameters: expected a dict or None, got str": lambda r: r.tools.append(Tool("f", parameters="{}")),
    "tool_choice.mode: expected one of any, auto, none, tool, got 'required'": lambda r: setattr(r, "tool_choice", ToolChoice("required")),
    "tags: expected a dict, got list": lambda r: setattr(r, "tags", ["long_context"]),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_what_is_refused_is_named(problem):
    r = request()
    BROKEN[problem](r)
    with pytest.raises(ValueError) as raised:
        check_request(r)
    assert str(raised.value) == problem


def test_a_request_replaced_by_something_else_is_named():
    with pytest.raises(ValueError, match="^request: expected a ChatRequest, got dict$"):
        check_request({"model": "gpt-4o", "messages": []})


def test_numbers_may_be_integers():
    r = request()
    r.temperature, r.top_p, r.max_tokens = 1, 0.5, 10
    check_request(r)
