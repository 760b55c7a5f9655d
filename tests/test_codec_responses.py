"""The Responses codec on its own: what a request and a response become, and
back.  Every fixture body survives a same-format round trip exactly; what
the canonical model makes of each item, part and field is stated case by
case; invalid bodies are refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from tests.codec_fixtures import CodecFixtures
from tornrouter.canonical import File, Image, Message, Opaque, Reasoning, Text, Thinking, Tool, ToolCall, ToolChoice, ToolResult
from tornrouter.errors import InvalidRequest
from tornrouter.formats.responses.codec import ResponsesCodec

codec = ResponsesCodec()
F = CodecFixtures("responses", codec)


def parse(body: dict[str, Any]) -> Any:
    return F.parse(body)


@pytest.mark.parametrize("name", F.requests)
def test_request_round_trip_is_exact(name: str) -> None:
    body = F.load("requests", name)
    assert codec.encode_request(parse(body)) == (body, [])


@pytest.mark.parametrize("name", F.responses)
def test_response_round_trip_is_exact(name: str) -> None:
    body = F.load("responses", name)
    out, lossy = codec.encode_response(codec.decode_response(body), parse({"model": "m", "input": "hi"}))
    assert (out, lossy) == (body, [])


@pytest.mark.parametrize("case", F.invalid, ids=[c["name"] for c in F.invalid])
def test_invalid_requests_are_refused_naming_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(case["body"])
    assert info.value.param.startswith(case["param"])
    assert info.value.message.startswith(case["param"])


def test_a_string_input_is_one_user_message() -> None:
    request = parse(F.load("requests", "plain"))
    assert [m.role for m in request.messages] == ["user"]
    assert request.last_user_text() == "Tell me a three sentence bedtime story about a unicorn."
    assert request.system == [] and request.source == "responses"


def test_instructions_and_leading_developer_messages_are_the_system_text() -> None:
    request = parse(F.load("requests", "instructions"))
    assert request.system_text() == "Talk like a pirate.\nKeep answers under fifty words."
    assert request.system[1].extra["item"] == {"role": "developer"}  # where that message begins
    assert [(m.role, m.text()) for m in request.messages] == [("user", "Are semicolons optional in JavaScript?")]
    assert (request.max_tokens, request.temperature, request.top_p, request.user) == (200, 0.7, 0.9, "user-1234")
    assert request.extra == {"metadata": {"session": "s-42"}}


def test_images_and_files() -> None:
    text, by_url, inline, file = parse(F.load("requests", "multimodal")).messages[0].content
    assert isinstance(text, Text)
    assert isinstance(by_url, Image) and by_url.url.startswith("https://") and by_url.detail == "high"
    assert isinstance(inline, Image) and inline.media_type == "image/png" and inline.detail == "auto"
    assert file == File(data="JVBERi0xLjQK", media_type="application/pdf", filename="draconomicon.pdf")


def test_one_assistant_turn_per_run_of_model_items() -> None:
    request = parse(F.load("requests", "codex"))
    assert request.system_text().startswith("You are Codex") and "<permissions instructions>" in request.system_text()
    assert [m.role for m in request.messages] == ["user", "user", "assistant", "user", "assistant", "user"]
    thinking, call = request.messages[2].content
    assert isinstance(thinking, Thinking) and thinking.thinking == "**Listing files**\n\nI'll run ls."
    assert thinking.extra == {"content": None, "encrypted_content": "gAAAAABpEncryptedReasoningBlob=="}
    assert isinstance(call, ToolCall) and call.input == {"command": ["bash", "-lc", "ls"], "workdir": "/home/dev/project"}
    (result,) = request.messages[3].content
    assert isinstance(result, ToolResult) and result.tool_call_id == call.id and result.content == [Text("README.md\nsrc\ntests\n")]
    assert request.tools[0] == Tool("shell", "Runs a shell command and returns its output.", request.tools[0].parameters, strict=False)
    assert request.tools[1].builtin == "web_search" and request.tools[1].web_search
    assert request.tool_choice == ToolChoice("auto", parallel=False)
    assert request.reasoning == Reasoning("enabled", "medium")
    assert request.extra["reasoning"] == {"summary": "auto"}
    assert request.stream is True


def test_hosted_tools_and_a_hosted_tool_choice_are_kept_as_sent() -> None:
    request = parse(F.load("requests", "hosted_tools"))
    assert [t.builtin for t in request.tools] == [
        "web_search_preview", "file_search", "code_interpreter", "image_generation", "mcp", "custom", None]
    assert request.tools[4].extra["server_label"] == "deepwiki"
    assert request.tool_choice == ToolChoice("auto") and request.extra["tool_choice"] == {"type": "web_search_preview"}


def test_arguments_are_sent_back_as_they_came_unless_changed() -> None:
    """The bytes of a call's arguments matter to the upstream's prompt cache."""
    body = F.load("requests", "tools_cycle")
    request = parse(body)
    call = request.messages[1].content[1]
    assert isinstance(call, ToolCall) and call.input == {"location": "Paris, France"}
    assert codec.encode_request(request)[0]["input"][2]["arguments"] == '{"location":"Paris, France"}'
    call.input["location"] = "Lyon, France"  # a plugin's change wins
    assert codec.encode_request(request)[0]["input"][2]["arguments"] == '{"location": "Lyon, France"}'


def test_a_response_reads_into_blocks_and_a_stop_reason() -> None:
    reasoning = codec.decode_response(F.load("responses", "reasoning"))
    thinking, text = reasoning.content
    assert isinstance(thinking, Thinking) and thinking.extra["encrypted_content"].startswith("gAAAA")
    assert thinking.thinking.split("\n\n")[-1] == "It is Paris."
    assert len(thinking.extra["summary"]) == 2  # two parts: the paragraphs alone would not say where
    assert text.text == "The capital of France is Paris." and reasoning.stop_reason == "end_turn"
    assert (reasoning.usage.input_tokens, reasoning.usage.output_tokens, reasoning.usage.reasoning_tokens) == (13, 211, 192)
    calls = codec.decode_response(F.load("responses", "function_calls"))
    assert calls.stop_reason == "tool_use" and [c.id for c in calls.content] == ["call_uAZ3TmwVeG8c4rZNyUrW7Qvx", "call_2bR5yQ8dKx9M3nPqLw4Ee1Tf"]
    assert codec.decode_response(F.load("responses", "incomplete")).stop_reason == "max_tokens"
    (refusal,) = codec.decode_response(F.load("responses", "refusal")).content
    assert refusal.refusal is True
    web = codec.decode_response(F.load("responses", "web_search"))
    assert isinstance(web.content[0], Opaque) and web.content[0].data["type"] == "web_search_call"


@pytest.mark.parametrize("body", [
    {"object": "chat.completion", "choices": []},
    {"object": "response", "output": "text"},
    {"object": "response", "status": "failed", "output": [], "error": {"code": "server_error", "message": "boom"}},
    {"object": "response", "output": [{"type": "function_call", "name": "f"}]},
], ids=["another API", "output not a list", "failed", "call without arguments"])
def test_a_body_that_is_not_a_response_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        codec.decode_response(body)


def test_the_response_repeats_the_request() -> None:
    request = parse({"model": "gpt-4.1", "input": "hi", "instructions": "be brief", "max_output_tokens": 50, "temperature": 0.2,
                     "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
                     "tool_choice": "required", "parallel_tool_calls": False, "metadata": {"k": "v"}, "store": False,
                     "reasoning": {"effort": "low", "summary": "auto"}, "text": {"format": {"type": "json_object"}}})
    answer = codec.decode_response(F.load("responses", "text"))
    answer.source, answer.extra, answer.usage.extra = None, {}, {}  # as if a plugin had answered
    body, _ = codec.encode_response(answer, request)
    Response.model_validate(body)
    assert {k: body[k] for k in ("instructions", "max_output_tokens", "temperature", "tool_choice", "parallel_tool_calls",
                                 "metadata", "store", "reasoning", "text")} == {
        "instructions": "be brief", "max_output_tokens": 50, "temperature": 0.2, "tool_choice": "required",
        "parallel_tool_calls": False, "metadata": {"k": "v"}, "store": False, "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_object"}}}
    assert body["tools"] == [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}]


def test_a_request_made_by_hand_is_written_whole() -> None:
    """A plugin may build turns from scratch: no marks, plain defaults."""
    request = parse({"model": "m", "input": "x"})
    request.messages = [Message("user", [Text("hello")]), Message("assistant", [Text("a"), Text("b")])]
    body, lossy = codec.encode_request(request)
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "a"}, {"type": "output_text", "text": "b"}]},
    ]
    assert lossy == []
