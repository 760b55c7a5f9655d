"""The OpenAI chat-completions codec, pure: fixture bodies in, canonical objects and bodies out.

Fixtures under ``fixtures/openai`` follow the API reference and the ``openai``
SDK types; the ``future_fields`` ones carry fields the API may add later, which
a same-format relay must keep where they were.  Cross-format behaviour is driven
from canonical objects shaped like what the Anthropic codec produces.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from tests.codec_fixtures import CodecFixtures
from tornrouter.canonical import (
    ChatRequest,
    ChatResponse,
    File,
    Image,
    Message,
    Opaque,
    Reasoning,
    StopReason,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from tornrouter.errors import InvalidRequest, NoProvider, UpstreamError
from tornrouter.formats.openai.codec import OpenAICodec
from tornrouter.formats.openai.shapes import FINISH_TO_STOP, STOP_TO_FINISH, usage_from_wire, usage_to_wire

codec = OpenAICodec()
FIXTURES = CodecFixtures("openai", codec)
REQUESTS, RESPONSES, INVALID = FIXTURES.requests, FIXTURES.responses, FIXTURES.invalid
fixture, parse = FIXTURES.load, FIXTURES.parse
HI = [{"role": "user", "content": "hi"}]
CACHE = {"cache_control": {"type": "ephemeral"}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def equivalent(value: Any, key: str = "") -> Any:
    """``value`` with the spellings OpenAI reads alike made equal.

    Nulls, empty lists and ``stream: false`` go; a string ``content`` becomes one
    text part and ``""`` none; a ``stop`` string becomes a list; ``tool_choice:
    auto`` beside tools goes (it is the default); tool-call ``arguments`` are
    parsed, as their whitespace is not kept.
    """
    if isinstance(value, list):
        return [equivalent(v) for v in value]
    if isinstance(value, dict):
        out = {k: equivalent(v, k) for k, v in value.items()}
        out = {k: v for k, v in out.items() if v is not None and v != []}
        if out.get("tool_choice") == "auto" and out.get("tools"):
            del out["tool_choice"]
        return out
    if key == "content" and isinstance(value, str):
        return [{"type": "text", "text": value}] if value else None
    if key == "stop" and isinstance(value, str):
        return [value]
    if key == "stream" and value is False:
        return None
    if key == "arguments":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- same-format requests ------------------------------------------------------------


@pytest.mark.parametrize("name", REQUESTS)
def test_request_round_trip(name: str) -> None:
    original = fixture("requests", name)
    request = parse(original)
    body, lossy = codec.encode_request(request)
    assert lossy == []
    assert equivalent(body) == equivalent(original)
    assert codec.encode_request(request) == (body, lossy), "encoding must not change the canonical request"


def test_system_and_developer_messages() -> None:
    request = parse(fixture("requests", "system_developer"))
    assert [t.text for t in request.system] == ["You are a helpful assistant.", "Answer in French.", "Be brief."]
    assert [t.extra for t in request.system] == [
        {"message": {"role": "developer"}},
        {"message": {"role": "system", "name": "policy"}},
        {},
    ]
    assert [m.role for m in request.messages] == ["user", "assistant", "system", "user"]
    assert request.messages[2].text() == "From now on, answer in English."
    assert request.messages[3].extra == {"name": "alice"}
    assert request.user == "user-1234"
    assert request.extra == {"max_tokens": None, "metadata": {"session": "abc"}, "store": True}


def test_a_plain_first_system_message_carries_no_mark() -> None:
    request = parse(fixture("requests", "multimodal"))
    assert request.system == [Text("Describe images precisely.")]


@pytest.mark.parametrize(
    ("sent", "limit", "written"),
    [
        ({"max_completion_tokens": 256}, 256, {"max_completion_tokens": 256}),
        ({"max_tokens": 100}, 100, {"max_tokens": 100}),
        ({"max_tokens": 50, "max_completion_tokens": 40}, 40, {"max_tokens": 50, "max_completion_tokens": 40}),
        ({"max_tokens": None}, None, {}),
    ],
)
def test_max_tokens_keeps_the_clients_key(sent: dict[str, Any], limit: int | None, written: dict[str, Any]) -> None:
    request = parse({"model": "gpt-4o", "messages": HI, **sent})
    assert request.max_tokens == limit
    body, _ = codec.encode_request(request)
    assert {k: v for k, v in body.items() if "max" in k} == written


def test_a_plugins_new_limit_goes_under_the_clients_key() -> None:
    request = parse({"model": "gpt-4o", "messages": HI, "max_tokens": 100})
    request.max_tokens = 10
    assert codec.encode_request(request)[0]["max_tokens"] == 10


def test_images_and_other_user_parts() -> None:
    content = parse(fixture("requests", "multimodal")).messages[0].content
    assert [b.type for b in content] == ["text", "image", "image", "opaque", "file"]
    by_url, inline = content[1], content[2]
    assert isinstance(by_url, Image) and by_url.url.startswith("https://") and by_url.detail == "high" and by_url.extra == {}
    assert inline == Image(media_type="image/png", data=PNG)
    assert content[3].data["type"] == "input_audio"
    assert content[4] == File(file_id="file-6F2ksmvXxt4VdoqmHRw6kL")


def test_tool_calls_and_tool_results() -> None:
    request = parse(fixture("requests", "tools"))
    assert [m.role for m in request.messages] == ["user", "assistant", "user", "user"]
    calls = request.messages[1].content
    assert calls[0] == ToolCall("call_abc123", "get_weather", {"location": "Boston, MA", "unit": "fahrenheit"})
    assert calls[2] == ToolCall("call_ghi789", "log_question", raw_arguments="")
    assert isinstance(calls[3], Opaque) and calls[3].data["type"] == "custom"
    results = request.messages[2].content
    assert [r.tool_call_id for r in results] == ["call_abc123", "call_def456", "call_ghi789", "call_jkl012"]
    assert all(isinstance(r, ToolResult) for r in results)
    assert [t.text for t in results[1].content] == ['{"temperature": 18,', ' "unit": "celsius"}']
    assert request.tools[0].strict is True and request.tools[0].extra == {}
    assert (request.tools[2].name, request.tools[2].builtin) == ("code_exec", "custom")
    assert request.tool_choice == ToolChoice("auto", parallel=True)


@pytest.mark.parametrize(
    ("sent", "choice"),
    [
        ({}, None),
        ({"tool_choice": "none"}, ToolChoice("none")),
        ({"tool_choice": "required"}, ToolChoice("any")),
        ({"parallel_tool_calls": False}, ToolChoice("auto", parallel=False)),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, ToolChoice("tool", "get_weather")),
        ({"tool_choice": {"type": "custom", "custom": {"name": "code_exec"}}}, ToolChoice("tool", "code_exec")),
        ({"tool_choice": fixture("requests", "allowed_tools")["tool_choice"]}, ToolChoice("any")),
    ],
)
def test_tool_choice(sent: dict[str, Any], choice: ToolChoice | None) -> None:
    tools = fixture("requests", "tools")["tools"]
    assert parse({"model": "gpt-4o", "messages": HI, "tools": tools, **sent}).tool_choice == choice


def test_future_fields_stay_at_their_level() -> None:
    request = parse(fixture("requests", "future_fields"))
    assert list(request.extra) == [
        "stream_options",
        "prompt_cache_key",
        "prompt_cache_options",
        "verbosity",
        "future_param",
    ]
    assert request.system[0].extra == {"message": {"role": "system", "future_message_field": {"a": 1}}}
    text, image = request.messages[0].content
    assert text.extra == {"prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"}}
    assert image.extra == {
        "prompt_cache_breakpoint": {"mode": "explicit"},
        "image_url": {"future_image_field": True},
    }
    assert image.detail == "low"
    assert request.messages[1].content == [  # content "" beside tool calls is no block
        ToolCall(
            "call_1",
            "lookup",
            {"q": "x"},
            extra={"extra_content": {"google": {"thought_signature": "abc"}}, "function": {"future_function_field": 1}},
        )
    ]
    assert request.messages[2].content[0].extra == {"future_tool_field": "y"}
    assert request.tools[0].extra == {"future_tool_level": 3, "function": {"future_def_field": 2}}


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_request_names_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(case["body"])
    assert caught.value.param == case["param"]
    assert caught.value.message.startswith(case["param"] + ": ")


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        codec.parse_request(body)
    assert caught.value.param is None


def test_an_unknown_role_says_which_roles_exist() -> None:
    with pytest.raises(InvalidRequest, match="'bot' is not one of: system, developer, user, assistant, tool"):
        parse({"model": "gpt-4o", "messages": [{"role": "bot", "content": "x"}]})


# --- cross-format requests --------------------------------------------------------------


SERVER_TOOL_USE = {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "paris"}}
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}


def weather_call(call_id: str, city: str) -> dict[str, Any]:
    arguments = json.dumps({"location": city})
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def anthropic_request() -> ChatRequest:
    """A tool-using conversation with thinking and prompt caching, as the Anthropic codec decodes it."""
    return ChatRequest(
        model="claude-sonnet-5-5",
        source="anthropic",
        system=[Text("You are terse.", dict(CACHE)), Text("Today is Monday.")],
        messages=[
            Message("user", [Text("Paris and Lyon? Map:"), Image(media_type="image/png", data=PNG, extra=dict(CACHE))]),
            Message(
                "assistant",
                [
                    Thinking("Two cities: two calls.", signature="EqQBCkgIARABGAIiQL"),
                    Text("Checking."),
                    ToolCall("toolu_01", "get_weather", {"location": "Paris"}),
                    ToolCall("toolu_02", "get_weather", {"location": "Lyon"}),
                    Opaque("anthropic", SERVER_TOOL_USE),
                ],
            ),
            Message(
                "user",
                [
                    Text("Here you go."),
                    ToolResult("toolu_01", [Text("18°C")]),
                    ToolResult("toolu_02", [Text("station offline")], is_error=True),
                ],
            ),
        ],
        max_tokens=1024,
        temperature=0.5,
        stop=["END"],
        stream=True,
        tools=[
            Tool("get_weather", "Current weather", WEATHER_SCHEMA, extra=dict(CACHE)),
            Tool("web_search", builtin="web_search_20250305", extra=WEB_SEARCH),
        ],
        tool_choice=ToolChoice("any", parallel=False),
        user="user-42",
        reasoning=Reasoning(budget_tokens=2048),
        extra={
            "top_k": 40,
            "metadata": {"tenant": "acme"},
            "service_tier": None,
        },
    )


def test_anthropic_request_to_openai() -> None:
    body, lossy = codec.encode_request(anthropic_request(), default_max_tokens=4096)
    assert body == {
        "model": "claude-sonnet-5-5",
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Today is Monday."}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Paris and Lyon? Map:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [weather_call("toolu_01", "Paris"), weather_call("toolu_02", "Lyon")],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "station offline"},
            {"role": "user", "content": "Here you go."},
        ],
        "max_completion_tokens": 1024,
        "temperature": 0.5,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    assert sorted(lossy) == [
        "content.server_tool_use",
        "image.cache_control",
        "metadata",
        "text.cache_control",
        "thinking",
        "tool_result.is_error",
        "tools.cache_control",
        "tools.web_search_20250305",
        "top_k",
    ]
    assert len(lossy) == len(set(lossy))


def _with(**changes: Any) -> ChatRequest:
    request = anthropic_request()
    for name, value in changes.items():
        setattr(request, name, value)
    return request


@pytest.mark.parametrize(
    ("changes", "expected", "lost"),
    [
        pytest.param({"tool_choice": ToolChoice("tool", "web_search")}, {"tool_choice": None}, "tool_choice", id="hosted"),
        pytest.param(
            {"tool_choice": ToolChoice("tool", "get_weather")},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            None,
            id="function named",
        ),
        pytest.param(
            {"tools": [Tool("web_search", builtin="web_search_20250305", extra=WEB_SEARCH)]},
            {"tools": None, "tool_choice": None, "parallel_tool_calls": None},
            "tool_choice",
            id="no tool left",
        ),
        pytest.param({"stop": list("12345")}, {"stop": list("1234")}, "stop_sequences", id="5 stops"),
        pytest.param(
            {"stream": False, "max_tokens": None},
            {"stream": None, "stream_options": None, "max_completion_tokens": None},
            None,
            id="no stream, no limit",
        ),
    ],
)
def test_anthropic_request_details(changes: dict[str, Any], expected: dict[str, Any], lost: str | None) -> None:
    body, lossy = codec.encode_request(_with(**changes))
    assert {key: body.get(key) for key in expected} == expected
    assert lost is None or lost in lossy


def test_thinking_disabled_loses_nothing() -> None:
    request = ChatRequest("claude-haiku-4-5", "anthropic", [Message("user", [Text("hi")])])
    request.reasoning = Reasoning("disabled")
    assert codec.encode_request(request) == ({"model": "claude-haiku-4-5", "messages": HI}, [])


def test_raw_arguments_are_relayed_byte_for_byte() -> None:
    request = _with(messages=[Message("assistant", [ToolCall("call_1", "f", raw_arguments='{"a": 1,')])])
    call = codec.encode_request(request)[0]["messages"][-1]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"a": 1,'


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESPONSES)
def test_response_round_trip(name: str) -> None:
    original = fixture("responses", name)
    body, lossy = codec.encode_response(codec.decode_response(original), parse(fixture("requests", "plain")))
    assert lossy == []
    assert equivalent(body) == equivalent(original)
    ChatCompletion.model_validate(body)


@pytest.mark.parametrize(
    ("name", "stop", "blocks", "usage"),
    [
        ("text", "end_turn", ["text"], (19, 10, 0, 0)),
        ("tool_calls", "tool_use", ["tool_call", "tool_call"], (82, 57, 0, 0)),
        ("length_cached", "max_tokens", ["text"], (86, 300, 1920, 0)),
        ("refusal", "end_turn", ["text"], (30, 12, 0, 0)),
        ("content_filter", "content_filter", ["text"], (10, 2, 0, 0)),
        ("legacy_function_call", "tool_use", [], (82, 18, 0, 0)),
        ("n2_logprobs", "end_turn", ["text"], (14, 18, 0, 0)),
        ("future_fields", "tool_use", ["text", "tool_call"], (10, 20, 10, 30)),
        ("compat_reasoning", "end_turn", ["thinking", "text"], (15, 120, 0, 0)),
    ],
)
def test_response_decoding(name: str, stop: str, blocks: list[str], usage: tuple[int, int, int, int]) -> None:
    response = codec.decode_response(fixture("responses", name))
    assert response.source == "openai"
    assert response.stop_reason == stop
    assert [b.type for b in response.content] == blocks
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens) == usage


def test_response_extras_by_level() -> None:
    response = codec.decode_response(fixture("responses", "n2_logprobs"))
    assert set(response.extra) == {"created", "service_tier", "system_fingerprint", "choice", "choices"}
    assert set(response.extra["choice"]) == {"logprobs"}
    assert [c["index"] for c in response.extra["choices"]] == [1]
    refusal = codec.decode_response(fixture("responses", "refusal")).content
    assert refusal == [Text("I'm sorry, I can't help with that request.", refusal=True)]
    legacy = codec.decode_response(fixture("responses", "legacy_function_call")).extra
    assert legacy["choice"] == {"finish_reason": "function_call"}
    assert legacy["message"]["function_call"]["name"] == "get_weather"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"object": "list", "data": []},
        {"id": "chatcmpl-1", "object": "chat.completion"},
        {"object": "chat.completion", "choices": [{"index": 0, "message": None}]},
        {"object": "chat.completion", "choices": [{"message": {"tool_calls": [{"function": {}}]}}]},
    ],
)
def test_a_body_that_is_not_a_chat_completion(body: Any) -> None:
    with pytest.raises(ValueError):
        codec.decode_response(body)


def anthropic_response(**changes: Any) -> ChatResponse:
    response = ChatResponse(
        id="msg_01XFDUDYJgAACzvnptvVoYEL",
        model="claude-sonnet-5-5",
        content=[
            Thinking("Look it up first.", signature="EqQBCkgIARABGAIiQL"),
            Opaque("anthropic", SERVER_TOOL_USE),
            Text("Paris is sunny", {"citations": [{"type": "web_search_result_location", "url": "https://x.org"}]}),
            Text(" today."),
            ToolCall("toolu_01", "get_weather", {"location": "Paris"}),
        ],
        stop_reason="tool_use",
        usage=Usage(100, 50, cache_read_tokens=1000, cache_creation_tokens=200, extra={"service_tier": "standard"}),
        source="anthropic",
    )
    for name, value in changes.items():
        setattr(response, name, value)
    return response


def test_anthropic_response_to_openai() -> None:
    body, lossy = codec.encode_response(anthropic_response(), anthropic_request())
    ChatCompletion.model_validate(body)
    assert isinstance(body.pop("created"), int)
    assert body == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "model": "claude-sonnet-5-5",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Paris is sunny today.",
                    "refusal": None,
                    "tool_calls": [weather_call("toolu_01", "Paris")],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1300,
            "completion_tokens": 50,
            "total_tokens": 1350,
            "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
        },
    }
    assert sorted(lossy) == ["content.server_tool_use", "text.citations", "thinking", "usage.service_tier"]


@pytest.mark.parametrize(
    ("stop", "stop_sequence", "finish", "lost"),
    [
        ("end_turn", None, "stop", []),
        ("stop_sequence", "END", "stop", ["stop_sequence"]),
        ("max_tokens", None, "length", []),
        ("tool_use", None, "tool_calls", []),
        ("refusal", None, "content_filter", []),
        ("pause_turn", None, "stop", ["pause_turn"]),
        (None, None, "stop", []),
    ],
)
def test_stop_reasons_to_finish_reasons(stop: Any, stop_sequence: str | None, finish: str, lost: list[str]) -> None:
    response = anthropic_response(content=[Text("ok")], stop_reason=stop, stop_sequence=stop_sequence, usage=Usage())
    body, lossy = codec.encode_response(response, anthropic_request())
    assert body["choices"][0]["finish_reason"] == finish
    assert lossy == lost


def test_a_plugins_response() -> None:
    response = ChatResponse.from_text("pong", model="gpt-4o", id="msg_1")
    body, lossy = codec.encode_response(response, parse(fixture("requests", "plain")))
    ChatCompletion.model_validate(body)
    assert (body["id"], body["choices"][0]["message"]["content"], lossy) == ("msg_1", "pong", [])


# --- helpers shared with the stream codec ---------------------------------------------


def test_stop_maps_agree() -> None:
    for finish in ("stop", "length", "tool_calls", "content_filter"):
        assert STOP_TO_FINISH[FINISH_TO_STOP[finish]] == finish
    assert set(STOP_TO_FINISH) == set(typing.get_args(StopReason))


def test_usage_helpers() -> None:
    wire = fixture("responses", "length_cached")["usage"]
    usage = usage_from_wire(wire)
    assert (usage.input_tokens, usage.cache_read_tokens, usage.prompt_tokens) == (86, 1920, 2006)
    assert usage_to_wire(usage, keep_extra=True) == wire
    anthropic = Usage(10, 5, cache_creation_tokens=3, extra={"service_tier": "standard"})
    assert usage_to_wire(anthropic) == {
        "prompt_tokens": 13,
        "completion_tokens": 5,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 3},
    }


# --- errors -------------------------------------------------------------------------------


def test_error_bodies() -> None:
    invalid = InvalidRequest("messages.0.role", "'bot' is not one of: user")
    assert codec.error_body(invalid) == {
        "error": {
            "message": "messages.0.role: 'bot' is not one of: user",
            "type": "router_error",
            "param": "messages.0.role",
            "code": "invalid_request",
        }
    }
    assert codec.error_body(NoProvider("gpt-9"))["error"]["param"] == "model"
    relayed = UpstreamError("oai", "Rate limit reached", upstream_status=429, error_type="rate_limit_error")
    assert codec.error_body(relayed)["error"]["type"] == "rate_limit_error"
    relayed.error_type = ""
    assert codec.error_body(relayed)["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (
            b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",'
            b' "param": null, "code": "invalid_api_key"}}',
            ("invalid_request_error", "Incorrect API key provided"),
        ),
        (b'{"error": {"message": "quota", "type": null, "code": "insufficient_quota"}}', ("insufficient_quota", "quota")),
        (b'{"error": "model not loaded"}', (None, "model not loaded")),
        # Not this API's error: the provider describes the body instead.
        (b"<html>502 Bad Gateway</html>\n", None),
        (b'{"detail": "Not Found"}', None),
        (b"\xff\xfe not UTF-8", None),
        (b"[" * 100_000, None),
    ],
)
def test_parse_error(body: bytes, parsed: tuple[str | None, str] | None) -> None:
    assert codec.parse_error(body) == parsed


@pytest.mark.parametrize(
    ("effort", "reasoning"),
    [("low", Reasoning("enabled", "low")), ("none", Reasoning("disabled", "none")), (None, None)],
)
def test_reasoning_effort_is_the_requests_reasoning(effort: str | None, reasoning: Reasoning | None) -> None:
    body = {"model": "o3", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}
    request = codec.parse_request(json.dumps(body).encode())
    assert request.reasoning == reasoning
    assert ("reasoning_effort" in request.extra) is (effort is None)  # a null one is relayed as sent
    assert codec.encode_request(request) == (body, [])
