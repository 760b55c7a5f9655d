"""Cross-format translation, wire to wire, through both codecs (pure, no servers).

A request goes client codec ``parse_request`` -> upstream codec ``encode_request``;
a response goes upstream codec ``decode_response`` -> client codec
``encode_response``.  Each case states the exact upstream (or client) body and
the exact lossy list.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tornrouter.errors import InvalidRequest
from tornrouter.formats.anthropic.codec import AnthropicCodec
from tornrouter.formats.openai.codec import OpenAICodec

OPENAI = OpenAICodec()
ANTHROPIC = AnthropicCodec()
DEFAULT_MAX_TOKENS = 1024


def openai_to_anthropic(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    request = OPENAI.parse_request(json.dumps(body).encode())
    return ANTHROPIC.encode_request(request, default_max_tokens=DEFAULT_MAX_TOKENS)


def anthropic_to_openai(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    request = ANTHROPIC.parse_request(json.dumps(body).encode())
    return OPENAI.encode_request(request, default_max_tokens=DEFAULT_MAX_TOKENS)


WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# --- OpenAI client -> Anthropic upstream ----------------------------------------------------

OPENAI_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "system placement and max_tokens default",
        {"model": "gpt-4.1", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "hi"},
        ]},
        {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "system": [
            {"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English."}],
         "messages": [{"role": "user", "content": "hi"}]},
        [],
    ),
    (
        "mid-conversation system folded into system",
        {"model": "gpt-4.1", "max_tokens": 100, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "Be brief from now on."},
            {"role": "user", "content": "sure?"},
        ]},
        {"model": "gpt-4.1", "max_tokens": 100, "system": "Be brief from now on.", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "sure?"}],
         },
        ["messages.system"],
    ),
    (
        "scalars: stop, temperature clamp, user, stream",
        {"model": "gpt-4.1", "max_completion_tokens": 300, "messages": [{"role": "user", "content": "count"}],
         "stop": "END", "temperature": 1.5, "top_p": 0.8, "user": "u-7", "stream": True,
         "stream_options": {"include_usage": True}, "n": 1},
        {"model": "gpt-4.1", "max_tokens": 300, "messages": [{"role": "user", "content": "count"}],
         "stop_sequences": ["END"], "temperature": 1, "top_p": 0.8, "metadata": {"user_id": "u-7"}, "stream": True},
        ["temperature"],
    ),
    (
        "tool cycle: arguments to input, consecutive tool results in one user turn",
        {"model": "gpt-4.1", "max_completion_tokens": 500, "messages": [
            {"role": "user", "content": "weather and time in SF?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"SF\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "15C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "10:00"}]},
            {"role": "user", "content": "thanks, and tomorrow?"},
        ], "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS}},
            {"type": "function", "function": {"name": "get_time"}},
        ], "tool_choice": "required", "parallel_tool_calls": False},
        {"model": "gpt-4.1", "max_tokens": 500, "messages": [
            {"role": "user", "content": "weather and time in SF?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "SF"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "15C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "10:00"},
                {"type": "text", "text": "thanks, and tomorrow?"}]},
        ], "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_PARAMS},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        [],
    ),
    (
        "assistant text beside tool calls, arguments that are not an object",
        {"model": "gpt-4.1", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Calling.", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "done"},
        ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}],
         "tool_choice": {"type": "function", "function": {"name": "f"}}},
        {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "call_9", "name": "f", "input": {"arguments": "not json"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "done"}]},
        ], "tools": [{"name": "f", "input_schema": {"type": "object"}}],
         "tool_choice": {"type": "tool", "name": "f"}},
        ["tool_call.arguments", "tools.strict"],
    ),
    (
        "tool_choice none and auto with parallel calls allowed",
        {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}],
         "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
        {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "hi"}],
         "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
         "tool_choice": {"type": "none"}},
        [],
    ),
    (
        "images by url and data url",
        {"model": "gpt-4.1", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]}]},
        {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ]}]},
        ["image.detail"],
    ),
    (
        "OpenAI-only fields are named, not sent",
        {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
         "logprobs": True, "top_logprobs": 2, "seed": 3, "response_format": {"type": "json_object"},
         "presence_penalty": 0.1, "frequency_penalty": 0.2, "logit_bias": {"50256": -100}, "store": False},
        {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "hi"}]},
        ["messages.name", "logprobs", "top_logprobs", "seed", "response_format", "presence_penalty", "frequency_penalty", "logit_bias"],
    ),
    (
        "reasoning_effort as a thinking budget",
        {"model": "o3", "max_completion_tokens": 8000, "messages": [{"role": "user", "content": "prove it"}], "reasoning_effort": "medium"},
        {"model": "o3", "max_tokens": 8000, "messages": [{"role": "user", "content": "prove it"}],
         "thinking": {"type": "enabled", "budget_tokens": 4000}},
        ["reasoning_effort"],
    ),
    (
        "web_search_options has no Anthropic request field: named, not sent",
        {"model": "gpt-4o-search-preview", "messages": [{"role": "user", "content": "news?"}],
         "web_search_options": {"search_context_size": "low"}},
        {"model": "gpt-4o-search-preview", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "news?"}]},
        ["web_search_options"],
    ),
]


@pytest.mark.parametrize(("name", "client", "upstream", "lossy"), OPENAI_REQUESTS, ids=[c[0] for c in OPENAI_REQUESTS])
def test_openai_request_to_anthropic(name: str, client: dict[str, Any], upstream: dict[str, Any], lossy: list[str]) -> None:
    assert openai_to_anthropic(client) == (upstream, lossy)


def test_openai_n_above_one_is_refused_for_anthropic() -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_to_anthropic({"model": "gpt-4.1", "n": 3, "messages": [{"role": "user", "content": "hi"}]})
    assert info.value.param == "n"


# --- Anthropic client -> OpenAI upstream ----------------------------------------------------

ANTHROPIC_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "system, scalars and metadata",
        {"model": "claude-sonnet-5-5", "max_tokens": 256, "system": "You are terse.",
         "messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["END"], "temperature": 0.3,
         "metadata": {"user_id": "u-7"}},
        {"model": "claude-sonnet-5-5", "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}],
         "max_completion_tokens": 256, "temperature": 0.3, "stop": ["END"], "user": "u-7"},
        [],
    ),
    (
        "system with cache_control and Anthropic-only fields",
        {"model": "claude-sonnet-5-5", "max_tokens": 256, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2000},
         "system": [{"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}],
         "messages": [{"role": "user", "content": "hi"}]},
        {"model": "claude-sonnet-5-5", "messages": [{"role": "system", "content": "Long context."}, {"role": "user", "content": "hi"}],
         "max_completion_tokens": 256},
        ["text.cache_control", "top_k", "thinking"],
    ),
    (
        "tool cycle: input to arguments, tool results to tool messages",
        {"model": "claude-sonnet-5-5", "max_tokens": 500, "messages": [
            {"role": "user", "content": "weather and time in SF?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "10:00"}]},
                {"type": "text", "text": "and tomorrow?"}]},
        ], "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_PARAMS},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        {"model": "claude-sonnet-5-5", "messages": [
            {"role": "user", "content": "weather and time in SF?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"SF\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "15C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "10:00"},
            {"role": "user", "content": "and tomorrow?"},
        ], "max_completion_tokens": 500, "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
        ], "tool_choice": "required", "parallel_tool_calls": False},
        [],
    ),
    (
        "tool_choice tool",
        {"model": "claude-sonnet-5-5", "max_tokens": 50, "messages": [{"role": "user", "content": "go"}],
         "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"}},
        {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "go"}], "max_completion_tokens": 50,
         "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
         "tool_choice": {"type": "function", "function": {"name": "f"}}},
        [],
    ),
    (
        "images base64 and url",
        {"model": "claude-sonnet-5-5", "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "compare"}]}]},
        {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "compare"}]}], "max_completion_tokens": 50},
        [],
    ),
    (
        "server tools and their blocks",
        {"model": "claude-sonnet-5-5", "max_tokens": 50,
         "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
         "messages": [
             {"role": "user", "content": "news?"},
             {"role": "assistant", "content": [
                 {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "news"}},
                 {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                 {"type": "text", "text": "Nothing new."}]},
             {"role": "user", "content": "ok"}]},
        {"model": "claude-sonnet-5-5", "messages": [
            {"role": "user", "content": "news?"}, {"role": "assistant", "content": "Nothing new."}, {"role": "user", "content": "ok"}],
         "max_completion_tokens": 50},
        ["content.server_tool_use", "content.web_search_tool_result", "tools.web_search_20250305"],
    ),
]


@pytest.mark.parametrize(("name", "client", "upstream", "lossy"), ANTHROPIC_REQUESTS, ids=[c[0] for c in ANTHROPIC_REQUESTS])
def test_anthropic_request_to_openai(name: str, client: dict[str, Any], upstream: dict[str, Any], lossy: list[str]) -> None:
    assert anthropic_to_openai(client) == (upstream, lossy)


# --- OpenAI upstream -> Anthropic client ----------------------------------------------------


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                           "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                           "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                         "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default", **extra,
    }


def message_for_client(content: list[dict[str, Any]], stop: str, usage: dict[str, Any], model: str = "gpt-4.1-2025-04-14") -> dict[str, Any]:
    """The Messages body an Anthropic client gets for an OpenAI upstream's completion (its id and model kept)."""
    return {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def anthropic_usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_creation: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read, "output_tokens": output_tokens}


ANTHROPIC_CLIENT = {"model": "claude-sonnet-5-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

OPENAI_RESPONSES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "text, stop -> end_turn, usage with cached tokens",
        ANTHROPIC_CLIENT,
        completion({"content": "Hello!"}, "stop", {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                                                   "prompt_tokens_details": {"cached_tokens": 1920}}),
        message_for_client([{"type": "text", "text": "Hello!"}], "end_turn", anthropic_usage(86, 300, cache_read=1920)),
        ["service_tier"],
    ),
    (
        "tool calls -> tool_use with input objects",
        ANTHROPIC_CLIENT,
        completion({"content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"SF\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}, "tool_calls"),
        message_for_client([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "SF"}},
                 {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}], "tool_use", anthropic_usage(19, 10)),
        ["service_tier"],
    ),
    (
        "length -> max_tokens",
        ANTHROPIC_CLIENT,
        completion({"content": "Once upon a"}, "length", system_fingerprint="fp_44709d6fcb"),
        message_for_client([{"type": "text", "text": "Once upon a"}], "max_tokens", anthropic_usage(19, 10)),
        ["service_tier", "system_fingerprint"],
    ),
    (
        "stop while the client had stop sequences",
        {**ANTHROPIC_CLIENT, "stop_sequences": ["5"]},
        completion({"content": "1, 2, 3, 4, "}, "stop"),
        message_for_client([{"type": "text", "text": "1, 2, 3, 4, "}], "end_turn", anthropic_usage(19, 10)),
        ["stop_sequence", "service_tier"],
    ),
    (
        "content_filter -> refusal; logprobs",
        ANTHROPIC_CLIENT,
        {**completion({"content": ""}, "content_filter"), "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": {"content": []}, "finish_reason": "content_filter"}]},
        message_for_client([], "refusal", anthropic_usage(19, 10)),
        ["service_tier", "logprobs"],
    ),
]


@pytest.mark.parametrize(("name", "client", "upstream", "expected", "lossy"), OPENAI_RESPONSES, ids=[c[0] for c in OPENAI_RESPONSES])
def test_openai_response_to_anthropic(
    name: str, client: dict[str, Any], upstream: dict[str, Any], expected: dict[str, Any], lossy: list[str]
) -> None:
    request = ANTHROPIC.parse_request(json.dumps(client).encode())
    body, got_lossy = ANTHROPIC.encode_response(OPENAI.decode_response(upstream), request)
    assert (body, got_lossy) == (expected, lossy)
    anthropic.types.Message.model_validate(body)


# --- Anthropic upstream -> OpenAI client ----------------------------------------------------


OPENAI_CLIENT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def anthropic_message(content: list[dict[str, Any]], stop: str, stop_sequence: str | None = None, **usage: int) -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-5-5-20250929",
            "content": content, "stop_reason": stop, "stop_sequence": stop_sequence,
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 6, **usage}}


def chat_completion(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "model": "claude-sonnet-5-5-20250929",
            "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message}, "logprobs": None,
                         "finish_reason": finish}],
            "usage": usage}


def openai_usage(prompt: int, completion_tokens: int, cached: int = 0, **details: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, **details}}


ANTHROPIC_RESPONSES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "text, end_turn -> stop, usage with cache",
        anthropic_message([{"type": "text", "text": "Hi!"}], "end_turn", cache_read_input_tokens=100, cache_creation_input_tokens=20),
        chat_completion({"content": "Hi!"}, "stop", openai_usage(132, 6, cached=100, cache_write_tokens=20)),
        [],
    ),
    (
        "tool_use -> tool_calls with JSON arguments",
        anthropic_message([{"type": "text", "text": "Checking."},
                           {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}}], "tool_use"),
        chat_completion({"content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"SF\"}"}}]},
            "tool_calls", openai_usage(12, 6)),
        [],
    ),
    (
        "max_tokens -> length",
        anthropic_message([{"type": "text", "text": "Once upon"}], "max_tokens"),
        chat_completion({"content": "Once upon"}, "length", openai_usage(12, 6)),
        [],
    ),
    (
        "stop_sequence -> stop, the sequence is lost",
        anthropic_message([{"type": "text", "text": "1, 2"}], "stop_sequence", stop_sequence="3"),
        chat_completion({"content": "1, 2"}, "stop", openai_usage(12, 6)),
        ["stop_sequence"],
    ),
    (
        "thinking and server tool blocks are named",
        anthropic_message([
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Found it."}], "end_turn", server_tool_use={"web_search_requests": 1}),
        chat_completion({"content": "Found it."}, "stop", openai_usage(12, 6)),
        ["thinking", "content.server_tool_use", "content.web_search_tool_result", "usage.server_tool_use"],
    ),
]


@pytest.mark.parametrize(("name", "upstream", "expected", "lossy"), ANTHROPIC_RESPONSES, ids=[c[0] for c in ANTHROPIC_RESPONSES])
def test_anthropic_response_to_openai(name: str, upstream: dict[str, Any], expected: dict[str, Any], lossy: list[str]) -> None:
    request = OPENAI.parse_request(json.dumps(OPENAI_CLIENT).encode())
    body, got_lossy = OPENAI.encode_response(ANTHROPIC.decode_response(upstream), request)
    assert isinstance(body.pop("created"), int)
    assert (body, got_lossy) == (expected, lossy)
