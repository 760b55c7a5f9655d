"""The Anthropic Messages codec, pure: fixture bodies in, canonical objects and bodies out.

Fixtures under ``fixtures/anthropic`` are realistic bodies from the API reference.
Cross-format behaviour is driven here from canonical objects; wire-to-wire
translations through the OpenAI codec are in ``test_translation.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import anthropic
import pytest

from tests.codec_fixtures import CodecFixtures
from tornrouter.canonical import (
    ChatRequest,
    ChatResponse,
    File,
    Image,
    Message,
    Opaque,
    Reasoning,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from tornrouter.errors import BodyTooLarge, InvalidRequest, NoProvider, RouterError, UpstreamError, UpstreamTimeout
from tornrouter.formats.anthropic.codec import AnthropicCodec
from tornrouter.formats.anthropic.shapes import STOP_FROM_WIRE, STOP_TO_WIRE, usage_from_wire, usage_to_wire

codec = AnthropicCodec()
FIXTURES = CodecFixtures("anthropic", codec)
REQUESTS, RESPONSES, INVALID = FIXTURES.requests, FIXTURES.responses, FIXTURES.invalid
fixture, parse = FIXTURES.load, FIXTURES.parse


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """A request body with the API's shorthands expanded, so equivalent bodies compare equal."""
    body = copy.deepcopy(body)
    body.setdefault("stream", False)
    if "system" in body:
        body["system"] = _blocks(body["system"])
    for message in body["messages"]:
        message["content"] = _blocks(message["content"])
        for block in message["content"]:
            if block["type"] == "tool_result":
                if "content" in block:
                    block["content"] = _blocks(block["content"])
                if block.get("is_error") is False:
                    del block["is_error"]
    return body


# --- requests -------------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUESTS)
def test_request_same_format_round_trip(name: str) -> None:
    body = fixture("requests", name)
    out, lossy = codec.encode_request(parse(body))
    assert lossy == []
    assert normalized(out) == normalized(body)


def _first(request: ChatRequest, role: str) -> Message:
    return next(m for m in request.messages if m.role == role)


DECODED: list[tuple[str, Callable[[ChatRequest], Any], Any]] = [
    ("plain", lambda r: (r.source, r.model, r.max_tokens, r.stream), ("anthropic", "claude-sonnet-5-5-20250929", 1024, False)),
    ("plain", lambda r: r.messages, [Message("user", [Text("Hello, Claude")])]),
    ("system_cache_control", lambda r: r.system[1].extra, {"cache_control": {"type": "ephemeral", "ttl": "1h"}}),
    ("system_cache_control", lambda r: r.system_text().startswith("You are an AI assistant"), True),
    ("system_cache_control", lambda r: (r.temperature, r.top_p, r.stop), (0.2, 0.9, ["\n\nHuman:", "END"])),
    ("system_cache_control", lambda r: (r.user, r.extra), ("13803d75-b4b5-4c3e-b2a2-6f21399b021b", {"top_k": 40})),
    ("system_cache_control", lambda r: r.messages[0].content[0].extra, {"cache_control": {"type": "ephemeral"}}),
    ("images", lambda r: r.messages[0].content[0], Image(media_type="image/jpeg", data=fixture("requests", "images")["messages"][0]["content"][0]["source"]["data"])),
    ("images", lambda r: r.messages[0].content[1], Image(url="https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", extra={"cache_control": {"type": "ephemeral"}})),
    ("tools_cycle", lambda r: [(t.name, t.builtin, t.extra) for t in r.tools], [("get_weather", None, {}), ("get_time", None, {"cache_control": {"type": "ephemeral"}})]),
    ("tools_cycle", lambda r: r.tools[0].parameters["required"], ["location"]),
    ("tools_cycle", lambda r: r.tool_choice, ToolChoice("auto", None, True)),
    ("tools_cycle", lambda r: r.messages[1].content[1], ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "San Francisco, CA", "unit": "celsius"})),
    ("tools_cycle", lambda r: r.messages[2].content, [
        ToolResult("toolu_01A09q90qw90lq917835lq9", [Text("15 degrees, sunny")]),
        ToolResult("toolu_01B19r91rw91mr928946mr0", [Text("timezone service unavailable")], is_error=True),
        Text("Please retry the time lookup."),
    ]),
    ("tool_choice_tool", lambda r: r.tool_choice, ToolChoice("tool", "record_summary", False)),
    ("tool_choice_tool", lambda r: [type(b).__name__ for b in r.messages[2].content[0].content], ["Text", "Image"]),
    ("tool_use_empty_result", lambda r: r.tool_choice, ToolChoice("none")),
    ("tool_use_empty_result", lambda r: r.messages[2].content, [ToolResult("toolu_ping"), ToolResult("toolu_ping2", [Text("")])]),
    ("thinking", lambda r: (r.reasoning, r.extra), (Reasoning("enabled", budget_tokens=10000), {})),
    ("thinking", lambda r: r.messages[1].content[:2], [
        Thinking("The user wants the weather in Paris. I should call get_weather.", "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"),
        Thinking(redacted="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"),
    ]),
    ("web_search", lambda r: (r.tools[0].name, r.tools[0].builtin, r.tools[0].extra["max_uses"]), ("web_search", "web_search_20250305", 5)),
    ("web_search", lambda r: [(type(b).__name__, getattr(b, "format", None)) for b in r.messages[1].content], [
        ("Text", None), ("Opaque", "anthropic"), ("Opaque", "anthropic"), ("Text", None),
    ]),
    ("web_search", lambda r: r.messages[1].content[3].extra["citations"][0]["type"], "web_search_result_location"),
    ("future_fields", lambda r: sorted(r.extra), ["container", "context_management", "inference_geo", "mcp_servers", "metadata", "output_config", "service_tier"]),
    ("future_fields", lambda r: r.reasoning, Reasoning("adaptive")),
    ("future_fields", lambda r: (r.user, r.extra["metadata"], r.stream), ("user-42", {"trace": "abc"}, True)),
    ("future_fields", lambda r: r.messages[0].extra, {"future_message_field": "kept"}),
    ("future_fields", lambda r: [b.data["type"] for b in r.messages[0].content if isinstance(b, Opaque)], ["image", "search_result"]),
    ("future_fields", lambda r: r.messages[0].content[0], File(data="JVBERi0xLjcKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K",
                                                               media_type="application/pdf", filename="Report", extra={"citations": {"enabled": True}})),
    ("future_fields", lambda r: r.messages[0].content[3], Text("Summarise the report.", {"future_block_field": {"x": 1}})),
    ("future_fields", lambda r: r.messages[1], Message("system", [Text("From now on, answer in French.")])),
    ("future_fields", lambda r: [(t.name, t.builtin) for t in r.tools], [("lookup", None), ("memory", "memory_20250818"), ("code_execution", "code_execution_20250825")]),
    ("future_fields", lambda r: r.tools[0].extra, {"type": "custom", "strict": True, "defer_loading": False, "input_examples": [{"q": "ants"}]}),
    ("future_fields", lambda r: r.tool_choice, ToolChoice("any")),
]


@pytest.mark.parametrize(("name", "get", "expected"), DECODED, ids=[f"{c[0]}-{i}" for i, c in enumerate(DECODED)])
def test_parse_request_decodes(name: str, get: Callable[[ChatRequest], Any], expected: Any) -> None:
    assert get(parse(fixture("requests", name))) == expected


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_request_names_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(case["body"])
    assert info.value.param == case["param"]
    assert info.value.status == 400
    assert info.value.message.startswith(case["param"] + ": ")


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]", b"\xff\xfe", b"null"])
def test_body_that_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        codec.parse_request(body)
    assert info.value.param is None


def test_max_tokens_zero_prewarms_the_cache() -> None:
    request = parse({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]})
    assert request.max_tokens == 0


def test_null_optional_fields_are_accepted_and_omitted() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "system": None, "temperature": None, "tools": None, "tool_choice": None, "metadata": None, "stream": None}
    out, lossy = codec.encode_request(parse(body))
    assert out == {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert lossy == []


def test_plugin_changes_win_over_extras() -> None:
    request = parse(fixture("requests", "system_cache_control"))
    request.temperature = 0.7
    request.user = None
    request.messages.append(Message("user", [Text("one more")]))
    out, _ = codec.encode_request(request)
    assert out["temperature"] == 0.7
    assert "metadata" not in out
    assert out["top_k"] == 40
    assert out["messages"][-1] == {"role": "user", "content": "one more"}


# --- encode_request from canonical objects of the other format ---------------------------


def openai_request(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="gpt-4.1", source="openai", messages=list(messages), **kwargs)


USER = Message("user", [Text("hi")])

CROSS: list[tuple[str, ChatRequest, dict[str, Any], dict[str, Any], list[str]]] = [
    # name, request, encode kwargs, expected body subset, expected lossy
    ("max_tokens default from the provider", openai_request(USER), {"default_max_tokens": 2000},
     {"max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}, []),
    ("max_tokens fallback", openai_request(USER), {}, {"max_tokens": 4096}, []),
    ("max_tokens from the client wins", openai_request(USER, max_tokens=77), {"default_max_tokens": 2000}, {"max_tokens": 77}, []),
    ("temperature clamped", openai_request(USER, temperature=1.6), {}, {"temperature": 1}, ["temperature"]),
    ("temperature kept", openai_request(USER, temperature=0.3, top_p=0.5), {}, {"temperature": 0.3, "top_p": 0.5}, []),
    ("user to metadata", openai_request(USER, user="u-1"), {}, {"metadata": {"user_id": "u-1"}}, []),
    ("stop to stop_sequences", openai_request(USER, stop=["END"], stream=True), {}, {"stop_sequences": ["END"], "stream": True}, []),
    ("leading system and developer", openai_request(Message("developer", [Text("Be terse.")]), USER, system=[Text("You are helpful.")]), {},
     {"system": [{"type": "text", "text": "You are helpful."}, {"type": "text", "text": "Be terse."}], "messages": [{"role": "user", "content": "hi"}]}, []),
    ("mid-conversation system folded", openai_request(USER, Message("assistant", [Text("hello")]), Message("system", [Text("Now in French.")]), Message("user", [Text("ok")])), {},
     {"system": "Now in French.", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "ok"}]},
     ["messages.system"]),
    ("consecutive turns merged, tool results first", openai_request(
        USER,
        Message("assistant", [ToolCall("call_1", "f", {"a": 1}), ToolCall("call_2", "g", {})]),
        Message("user", [ToolResult("call_1", [Text("one")])]),
        Message("user", [ToolResult("call_2", [Text("two")], is_error=True)]),
        Message("user", [Text("and?")]),
    ), {}, {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "two", "is_error": True},
            {"type": "text", "text": "and?"}]},
    ]}, []),
    ("text before a tool result moves after it", openai_request(
        Message("assistant", [ToolCall("call_1", "f")]),
        Message("user", [Text("note"), ToolResult("call_1", [Text("r")])]),
    ), {}, {"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "r"}, {"type": "text", "text": "note"}]},
    ]}, []),
    ("tool ids sanitized consistently", openai_request(
        Message("assistant", [ToolCall("functions.get:0", "get")]),
        Message("user", [ToolResult("functions.get:0", [Text("r")])]),
    ), {}, {"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "functions_get_0", "name": "get", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "functions_get_0", "content": "r"}]},
    ]}, []),
    ("arguments that are not an object are wrapped", openai_request(
        USER, Message("assistant", [ToolCall("call_1", "f", raw_arguments="[1, 2")])), {},
     {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
         {"type": "tool_use", "id": "call_1", "name": "f", "input": {"arguments": "[1, 2"}}]}]},
     ["tool_call.arguments"]),
    ("empty assistant text dropped, turns merged", openai_request(USER, Message("assistant", [Text("")]), Message("user", [Text("again")])), {},
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}]}, []),
    ("images by url, data url and inline", openai_request(Message("user", [
        Image(url="https://x/a.png", extra={"detail": "high"}),
        Image(url="data:image/png;base64,iVBORw0KGgo="),
        Image(media_type="image/webp", data="UklGRg=="),
    ])), {}, {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
    ]}]}, ["image.detail"]),
    ("blocks only OpenAI has", openai_request(Message("user", [Text("listen"), Opaque("openai", {"type": "input_audio", "input_audio": {}})]),
                                              Message("assistant", [Thinking("unsigned reasoning"), Text("ok")])), {},
     {"messages": [{"role": "user", "content": "listen"}, {"role": "assistant", "content": "ok"}]},
     ["content.input_audio", "thinking"]),
    ("tools and tool_choice", openai_request(USER, tools=[
        Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}, extra={"strict": True}),
        Tool("noargs"),
        Tool("custom_grammar", builtin="custom", extra={"type": "custom", "custom": {"name": "x"}}),
    ], tool_choice=ToolChoice("any", parallel=False)), {}, {
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }, ["tools.strict", "tools.custom"]),
    ("tool_choice named tool", openai_request(USER, tools=[Tool("f")], tool_choice=ToolChoice("tool", "f")), {},
     {"tool_choice": {"type": "tool", "name": "f"}}, []),
    ("tool_choice none", openai_request(USER, tools=[Tool("f")], tool_choice=ToolChoice("none", parallel=True)), {},
     {"tool_choice": {"type": "none"}}, []),
    ("tool_choice without tools is dropped", openai_request(USER, tool_choice=ToolChoice("auto")), {}, {}, []),
    ("OpenAI-only fields", openai_request(USER, extra={
        "n": 1, "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3, "seed": 7,
        "response_format": {"type": "json_object"}, "presence_penalty": 0.5, "frequency_penalty": 0.1,
        "logit_bias": {"50256": -100}, "store": False, "modalities": None,
    }), {}, {}, ["logprobs", "top_logprobs", "seed", "response_format", "presence_penalty", "frequency_penalty", "logit_bias"]),
    ("reasoning_effort with a client max_tokens", openai_request(USER, max_tokens=10000, reasoning=Reasoning(effort="high")), {},
     {"max_tokens": 10000, "thinking": {"type": "enabled", "budget_tokens": 5000}}, ["reasoning_effort"]),
    ("reasoning_effort on a default max_tokens", openai_request(USER, reasoning=Reasoning(effort="low")), {"default_max_tokens": 1000},
     {"max_tokens": 3048, "thinking": {"type": "enabled", "budget_tokens": 2048}}, ["reasoning_effort"]),
    ("reasoning_effort with a temperature cannot think", openai_request(USER, temperature=0.2, reasoning=Reasoning(effort="medium")), {},
     {"temperature": 0.2}, ["reasoning_effort"]),
    ("reasoning_effort none", openai_request(USER, reasoning=Reasoning("disabled", "none")), {}, {}, []),
    ("message extras of the other format", openai_request(Message("user", [Text("hi")], {"name": "alice"})), {},
     {"messages": [{"role": "user", "content": "hi"}]}, ["messages.name"]),
    ("marks of the OpenAI codec", openai_request(
        Message("user", [Text("hi")]), Message("assistant", [Text("no", refusal=True)]),
        system=[Text("a", {"message": {"role": "developer"}}), Text("b", {"message": {"role": "system", "name": "ops"}})]), {},
     {"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
      "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no"}]}, ["messages.name"]),
]


@pytest.mark.parametrize(("name", "request_", "kwargs", "expected", "lossy"), CROSS, ids=[c[0] for c in CROSS])
def test_encode_request_from_openai(
    name: str, request_: ChatRequest, kwargs: dict[str, Any], expected: dict[str, Any], lossy: list[str]
) -> None:
    out, got_lossy = codec.encode_request(request_, **kwargs)
    assert {k: out.get(k) for k in expected} == expected
    assert got_lossy == lossy
    assert len(set(got_lossy)) == len(got_lossy)
    if name in ("tool_choice without tools is dropped", "reasoning_effort none"):
        assert "tool_choice" not in out and "thinking" not in out


def test_n_above_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        codec.encode_request(openai_request(USER, extra={"n": 2}))
    assert info.value.param == "n"
    assert "n=1" in info.value.message


def test_lossy_names_are_unique() -> None:
    request = openai_request(
        Message("user", [Image(url="https://a", extra={"detail": "low"}), Image(url="https://b", extra={"detail": "low"})]),
        Message("assistant", [Text("x")]),
        Message("system", [Text("a")]),
        Message("system", [Text("b")]),
    )
    _, lossy = codec.encode_request(request)
    assert lossy == ["image.detail", "messages.system"]


# --- responses -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESPONSES)
def test_response_same_format_round_trip(name: str) -> None:
    body = fixture("responses", name)
    response = codec.decode_response(copy.deepcopy(body))
    assert response.source == "anthropic"
    out, lossy = codec.encode_response(response, parse(fixture("requests", "plain")))
    assert lossy == []
    assert out == body
    if not name.startswith("future"):  # the SDK rejects block types it does not know yet
        anthropic.types.Message.model_validate(out)


RESPONSE_DECODED: list[tuple[str, Callable[[ChatResponse], Any], Any]] = [
    ("text", lambda r: (r.id, r.model, r.text(), r.stop_reason, r.stop_sequence), ("msg_013Zva2CMHLNnXjNJJKqJ2EF", "claude-sonnet-5-5-20250929", "Hi! My name is Claude.", "end_turn", None)),
    ("tool_use", lambda r: r.usage, Usage(472, 89, cache_read_tokens=2048, cache_creation_tokens=1024)),
    ("tool_use", lambda r: (r.stop_reason, r.content[1]), ("tool_use", ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "San Francisco, CA", "unit": "celsius"}))),
    ("thinking", lambda r: [type(b).__name__ for b in r.content], ["Thinking", "Thinking", "Text"]),
    ("thinking", lambda r: r.usage.extra, {"output_tokens_details": {"thinking_tokens": 250}}),
    ("web_search", lambda r: [b.data["type"] for b in r.content if isinstance(b, Opaque)], ["server_tool_use", "web_search_tool_result"]),
    ("web_search", lambda r: sorted(r.usage.extra), ["cache_creation", "server_tool_use", "service_tier"]),
    ("web_search", lambda r: r.content[4].extra["citations"][0]["cited_text"][:12], "Claude Elwoo"),
    ("stop_sequence", lambda r: (r.stop_reason, r.stop_sequence), ("stop_sequence", "5")),
    ("max_tokens", lambda r: r.stop_reason, "max_tokens"),
    ("future_fields", lambda r: (r.stop_reason, sorted(r.extra)), ("refusal", ["container", "private_field", "stop_details"])),
    ("future_fields", lambda r: r.content[3].extra, {"caller": {"type": "direct"}}),
    ("future_fields", lambda r: r.content[4], Opaque("anthropic", {"type": "brand_new_block", "payload": {"nested": [1, 2]}})),
]


@pytest.mark.parametrize(("name", "get", "expected"), RESPONSE_DECODED, ids=[f"{c[0]}-{i}" for i, c in enumerate(RESPONSE_DECODED)])
def test_decode_response(name: str, get: Callable[[ChatResponse], Any], expected: Any) -> None:
    assert get(codec.decode_response(fixture("responses", name))) == expected


@pytest.mark.parametrize("body", [
    [],
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {"type": "message", "role": "assistant"},
    {"type": "message", "content": ["text"]},
    {"type": "message", "content": [{"type": "text"}]},
    {"object": "chat.completion", "choices": []},
])
def test_decode_response_rejects_what_is_not_a_message(body: Any) -> None:
    with pytest.raises(ValueError):
        codec.decode_response(body)


def test_context_window_stop_is_a_length_stop() -> None:
    body = fixture("responses", "max_tokens") | {"stop_reason": "model_context_window_exceeded"}
    assert codec.decode_response(body).stop_reason == "max_tokens"


def test_plugin_response_encodes_cleanly() -> None:
    response = ChatResponse.from_text("pong", model="claude-x", id="msg_plugin")
    response.extra = {"note": "ignored"}
    out, lossy = codec.encode_response(response, parse(fixture("requests", "plain")))
    assert lossy == []
    assert out == {
        "id": "msg_plugin", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "pong"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0},
    }
    anthropic.types.Message.model_validate(out)


def openai_response(*content: Any, **kwargs: Any) -> ChatResponse:
    return ChatResponse(id="chatcmpl-1", model="gpt-4.1", content=list(content), source="openai", **kwargs)


RESPONSE_CROSS: list[tuple[str, ChatResponse, list[str], dict[str, Any], list[str]]] = [
    # name, response, request stop sequences, expected body subset, expected lossy
    ("text and usage", openai_response(Text("hi"), usage=Usage(10, 5, cache_read_tokens=4)), [],
     {"id": "chatcmpl-1", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
      "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 5}}, []),
    ("extras of the other format", openai_response(
        Text("hi", {"future": 1}), usage=Usage(1, 1, extra={"completion_tokens_details": {"reasoning_tokens": 7}}),
        extra={"created": 1700000000, "system_fingerprint": "fp_1", "service_tier": "default",
               "choice": {"logprobs": {"content": []}}, "message": {"annotations": [{"type": "url_citation"}]},
               "choices": [{"index": 1}]}), [],
     {"content": [{"type": "text", "text": "hi"}]},
     ["text.future", "system_fingerprint", "service_tier", "logprobs", "annotations", "choices"]),
    ("refusal", openai_response(Text("I can't help with that.", refusal=True), stop_reason="end_turn"), [],
     {"content": [{"type": "text", "text": "I can't help with that."}]}, []),
    ("tool calls", openai_response(ToolCall("call_1", "f", {"a": 1}), ToolCall("call_2", "g", raw_arguments="{\"b\": "), stop_reason="tool_use"), [],
     {"content": [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                  {"type": "tool_use", "id": "call_2", "name": "g", "input": {"arguments": "{\"b\": "}}], "stop_reason": "tool_use"},
     ["tool_call.arguments"]),
    ("reasoning without signature", openai_response(Thinking("because"), Text("42")), [],
     {"content": [{"type": "thinking", "thinking": "because", "signature": ""}, {"type": "text", "text": "42"}]}, []),
    ("stop with stop sequences", openai_response(Text("1, 2"), stop_reason="end_turn"), ["3"],
     {"stop_reason": "end_turn", "stop_sequence": None}, ["stop_sequence"]),
    ("length", openai_response(Text("1, 2"), stop_reason="max_tokens"), ["3"], {"stop_reason": "max_tokens"}, []),
    ("content filter", openai_response(Text(""), stop_reason="content_filter"), [], {"stop_reason": "refusal"}, []),
    ("blocks a message cannot hold", openai_response(Image(url="https://x"), Opaque("openai", {"type": "audio"}), Text("t")), [],
     {"content": [{"type": "text", "text": "t"}]}, ["content.image", "content.audio"]),
]


@pytest.mark.parametrize(("name", "response", "stop", "expected", "lossy"), RESPONSE_CROSS, ids=[c[0] for c in RESPONSE_CROSS])
def test_encode_response_from_openai(
    name: str, response: ChatResponse, stop: list[str], expected: dict[str, Any], lossy: list[str]
) -> None:
    out, got_lossy = codec.encode_response(response, openai_request(USER, stop=stop))
    assert {k: out[k] for k in expected} == expected
    assert got_lossy == lossy
    anthropic.types.Message.model_validate(out)


# --- errors, stop reasons, usage --------------------------------------------------------------


def _bare(status: int) -> RouterError:
    error = RouterError("boom", error_type="")
    error.status = status
    return error


@pytest.mark.parametrize(("error", "expected_type"), [
    (InvalidRequest("messages", "bad"), "router_error"),
    (NoProvider("x"), "router_error"),
    (UpstreamError("p", "overloaded", upstream_status=529, error_type="overloaded_error"), "overloaded_error"),
    (_bare(400), "invalid_request_error"),
    (_bare(401), "authentication_error"),
    (_bare(403), "permission_error"),
    (_bare(404), "not_found_error"),
    (_bare(413), "request_too_large"),
    (_bare(429), "rate_limit_error"),
    (_bare(500), "api_error"),
    (_bare(502), "api_error"),
    (_bare(504), "timeout_error"),
    (_bare(529), "overloaded_error"),
])
def test_error_body(error: RouterError, expected_type: str) -> None:
    assert codec.error_body(error) == {"type": "error", "error": {"type": expected_type, "message": error.message}}


def test_error_body_of_router_errors_keeps_their_message() -> None:
    assert codec.error_body(BodyTooLarge(10))["error"]["message"] == "request body exceeds the limit of 10 bytes"
    assert codec.error_body(UpstreamTimeout("p", "timed out"))["error"] == {"type": "router_error", "message": "provider 'p': timed out"}


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}',
     ("rate_limit_error", "Number of requests has exceeded your rate limit")),
    (b'{"error":{"message":"no type here"}}', (None, "no type here")),
    (b'{"error":"plain string"}', (None, "plain string")),
    # Not this API's error: the provider describes the body instead.
    (b"<html>\n<body>502   Bad Gateway</body></html>", None),
    (b'{"detail": "Not Found"}', None),
    (b"\xff\xfe not UTF-8", None),
    (b"[" * 100_000, None),
    (b"", None),
])
def test_parse_error(body: bytes, expected: tuple[str | None, str] | None) -> None:
    assert codec.parse_error(body) == expected


def test_stop_maps_round_trip_the_canonical_names() -> None:
    for wire, canonical in STOP_FROM_WIRE.items():
        if wire != "model_context_window_exceeded":
            assert STOP_TO_WIRE[canonical] == wire
    assert STOP_TO_WIRE["content_filter"] == "refusal"


def test_usage_helpers() -> None:
    wire = {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": None, "cache_creation_input_tokens": 2, "service_tier": "priority"}
    usage = usage_from_wire(wire)
    assert usage == Usage(3, 4, cache_read_tokens=0, cache_creation_tokens=2, extra={"service_tier": "priority"})
    assert usage_to_wire(usage) == {"input_tokens": 3, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 0, "output_tokens": 4}
    assert usage_to_wire(usage, keep_extra=True)["service_tier"] == "priority"
    assert usage_from_wire({"output_tokens": 9}) == Usage(0, 9)


@pytest.mark.parametrize(
    ("thinking", "reasoning"),
    [
        ({"type": "enabled", "budget_tokens": 2048, "display": "omitted"},
         Reasoning("enabled", budget_tokens=2048, extra={"display": "omitted"})),
        ({"type": "disabled"}, Reasoning("disabled")),
        ({"type": "adaptive"}, Reasoning("adaptive")),
        ({"type": "between_tools"}, None),  # a type Reasoning does not name stays in extra
        (None, None),
    ],
)
def test_thinking_is_the_requests_reasoning(thinking: dict[str, Any] | None, reasoning: Reasoning | None) -> None:
    body = {"model": "claude-sonnet-5-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}],
            "thinking": thinking}
    request = codec.parse_request(json.dumps(body).encode())
    assert request.reasoning == reasoning
    assert codec.encode_request(request) == (body, [])
