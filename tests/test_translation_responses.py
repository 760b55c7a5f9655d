"""The Responses API across formats, wire to wire, through the codecs (pure, no servers).

A Responses request to a chat-completions or Anthropic upstream, theirs to a
Responses upstream; a Responses upstream's answer to their clients, theirs
to a Responses client.  Each case states the exact body and the exact lossy
list; every answer a Responses client gets is one the official SDK's
``Response`` type accepts.
"""

from __future__ import annotations

import re

import json
from typing import Any

import pytest
from openai.types.responses import Response

from tests.codec_fixtures import CodecFixtures
from tornrouter.errors import InvalidRequest
from tornrouter.formats.anthropic.codec import AnthropicCodec
from tornrouter.formats.openai.codec import OpenAICodec
from tornrouter.formats.responses.codec import ResponsesCodec

RESPONSES, OPENAI, ANTHROPIC = ResponsesCodec(), OpenAICodec(), AnthropicCodec()
F = CodecFixtures("responses", RESPONSES)
DEFAULT_MAX_TOKENS = 1024
W = {"type": "object", "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}},
     "required": ["location"], "additionalProperties": False}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def from_responses(name: str, target: Any) -> tuple[dict[str, Any], list[str]]:
    request = F.parse(F.load("requests", name))
    return target.encode_request(request, default_max_tokens=DEFAULT_MAX_TOKENS)


# --- Responses client -> chat-completions upstream ---------------------------------------------

TO_CHAT = [
    ("instructions", {"model": "gpt-4.1", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Talk like a pirate."}, {"type": "text", "text": "Keep answers under fifty words."}]},
        {"role": "user", "content": "Are semicolons optional in JavaScript?"}],
        "max_completion_tokens": 200, "temperature": 0.7, "top_p": 0.9, "user": "user-1234", "metadata": {"session": "s-42"}}, []),
    ("tools_cycle", {"model": "o4-mini", "messages": [
        {"role": "user", "content": "What is the weather like in Paris today?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_ZA7QYUX6ow8YsNN6CaX2wWWZ", "type": "function",
                                                               "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}"}}]},
        {"role": "tool", "tool_call_id": "call_ZA7QYUX6ow8YsNN6CaX2wWWZ", "content": "{\"temperature\": 19, \"unit\": \"celsius\"}"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get current temperature for a given location.",
                                                    "parameters": W, "strict": True}}],
        "tool_choice": "auto", "parallel_tool_calls": True, "store": False, "reasoning_effort": "medium"},
     ["thinking", "thinking.encrypted_content", "include", "reasoning.summary"]),
    ("structured_output", {"model": "gpt-4o-2024-08-06", "messages": [
        {"role": "system", "content": "Extract the event information."},
        {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "calendar_event", "strict": True, "schema": F.load("requests", "structured_output")["text"]["format"]["schema"]}}}, []),
    ("hosted_tools", {"model": "gpt-4.1", "messages": [{"role": "user", "content": "What was a positive news story from today?"}],
                      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": W, "strict": True}}], "tool_choice": "auto"},
     ["tools.web_search_preview", "tools.file_search", "tools.code_interpreter", "tools.image_generation", "tools.mcp", "tools.custom", "tool_choice"]),
]


@pytest.mark.parametrize(("name", "upstream", "lossy"), TO_CHAT, ids=[c[0] for c in TO_CHAT])
def test_responses_request_to_chat(name: str, upstream: dict[str, Any], lossy: list[str]) -> None:
    assert from_responses(name, OPENAI) == (upstream, lossy)


def test_codex_request_to_chat_keeps_its_tools_and_drops_web_search() -> None:
    body, lossy = from_responses("codex", OPENAI)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "user", "assistant", "tool", "assistant", "user"]
    assert body["messages"][3]["tool_calls"][0]["function"]["name"] == "shell"
    assert [t["function"]["name"] for t in body["tools"]] == ["shell"] and body["tools"][0]["function"]["strict"] is False
    assert (body["parallel_tool_calls"], body["store"], body["reasoning_effort"], body["verbosity"]) == (False, False, "medium", "medium")
    assert body["prompt_cache_key"] == "0199a2b4-6c3e-7d21-9f0a-2b1c3d4e5f60"
    assert body["stream_options"] == {"include_usage": True}
    assert lossy == ["thinking", "thinking.encrypted_content", "tools.web_search", "include", "reasoning.summary"]


# --- Responses client -> Anthropic upstream ----------------------------------------------------

TO_ANTHROPIC = [
    ("instructions", {"model": "gpt-4.1", "max_tokens": 200, "messages": [{"role": "user", "content": "Are semicolons optional in JavaScript?"}],
                      "system": [{"type": "text", "text": "Talk like a pirate."}, {"type": "text", "text": "Keep answers under fifty words."}],
                      "temperature": 0.7, "top_p": 0.9, "metadata": {"user_id": "user-1234"}}, ["metadata"]),
    ("tools_cycle", {"model": "o4-mini", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [
        {"role": "user", "content": "What is the weather like in Paris today?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_ZA7QYUX6ow8YsNN6CaX2wWWZ", "name": "get_weather", "input": {"location": "Paris, France"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_ZA7QYUX6ow8YsNN6CaX2wWWZ", "content": "{\"temperature\": 19, \"unit\": \"celsius\"}"}]}],
        "tools": [{"name": "get_weather", "description": "Get current temperature for a given location.", "input_schema": W}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": False}},
     ["thinking", "thinking.encrypted_content", "tools.strict", "reasoning_effort", "include", "reasoning.summary"]),
    ("hosted_tools", {"model": "gpt-4.1", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": "What was a positive news story from today?"}],
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "get_weather", "input_schema": W}],
                      "tool_choice": {"type": "auto"}},
     ["tools.web_search_preview.search_context_size", "tools.file_search", "tools.code_interpreter", "tools.image_generation",
      "tools.mcp", "tools.custom", "tools.strict", "tool_choice"]),
    ("structured_output", {"model": "gpt-4o-2024-08-06", "max_tokens": DEFAULT_MAX_TOKENS, "system": "Extract the event information.",
                           "messages": [{"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}]}, ["text.format"]),
]


@pytest.mark.parametrize(("name", "upstream", "lossy"), TO_ANTHROPIC, ids=[c[0] for c in TO_ANTHROPIC])
def test_responses_request_to_anthropic(name: str, upstream: dict[str, Any], lossy: list[str]) -> None:
    assert from_responses(name, ANTHROPIC) == (upstream, lossy)


def test_codex_request_to_anthropic_searches_with_the_server_tool() -> None:
    body, lossy = from_responses("codex", ANTHROPIC)
    assert body["tools"][1] == {"type": "web_search_20250305", "name": "web_search"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192} and body["max_tokens"] == DEFAULT_MAX_TOKENS + 8192
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "thinking.encrypted_content" in lossy and "tools.web_search" not in lossy


@pytest.mark.parametrize("target", [OPENAI, ANTHROPIC, RESPONSES], ids=["chat", "anthropic", "responses"])
def test_previous_response_id_is_never_sent_upstream(target: Any) -> None:
    """The router's store has put the conversation it names in ``input``
    (``handlers.responses``): no upstream gets an id it did not issue."""
    request = F.parse({"model": "m", "input": "and then?", "previous_response_id": "resp_123"})
    body, lossy = target.encode_request(request, default_max_tokens=DEFAULT_MAX_TOKENS)
    assert "previous_response_id" not in body and "previous_response_id" not in lossy


@pytest.mark.parametrize("target", [OPENAI, ANTHROPIC], ids=["chat", "anthropic"])
@pytest.mark.parametrize("field", ["conversation", "prompt"])
def test_what_needs_openais_state_is_refused_elsewhere(target: Any, field: str) -> None:
    value = {"id": "pmpt_1"} if field == "prompt" else "resp_123"
    request = F.parse({"model": "m", "input": "and then?", field: value})
    with pytest.raises(InvalidRequest) as info:
        target.encode_request(request, default_max_tokens=DEFAULT_MAX_TOKENS)
    assert info.value.param == field and "Responses API" in info.value.message
    assert RESPONSES.encode_request(request)[0][field] == value  # relayed to an upstream of the same API


# --- chat-completions and Anthropic clients -> Responses upstream ------------------------------

CHAT = {"model": "gpt-4.1", "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "weather in SF?"}, {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"SF\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "15C"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY, "strict": True}},
              {"type": "function", "function": {"name": "noargs"}}],
    "tool_choice": "required", "parallel_tool_calls": False, "max_completion_tokens": 300, "temperature": 0.5, "stop": ["END"],
    "user": "u-7", "seed": 3, "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": CITY, "strict": True}},
    "store": True, "metadata": {"a": "b"}, "reasoning_effort": "low", "stream": True, "stream_options": {"include_usage": True},
    "web_search_options": {"search_context_size": "low", "user_location": {"type": "approximate", "approximate": {"country": "US", "city": "SF"}}}}


def test_chat_request_to_responses() -> None:
    request = OPENAI.parse_request(json.dumps(CHAT).encode())
    assert RESPONSES.encode_request(request) == ({
        "model": "gpt-4.1", "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather in SF?"},
                                         {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"SF\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "15C"}],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": CITY, "strict": True},
                  {"type": "function", "name": "noargs", "parameters": None, "strict": False},
                  {"type": "web_search", "search_context_size": "low", "user_location": {"type": "approximate", "country": "US", "city": "SF"}}],
        "tool_choice": "required", "parallel_tool_calls": False, "max_output_tokens": 300, "temperature": 0.5, "stream": True,
        "user": "u-7", "reasoning": {"effort": "low"}, "metadata": {"a": "b"}, "store": True,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": CITY, "strict": True}},
    }, ["stop", "seed"])


def test_chat_n_above_one_is_refused_for_responses() -> None:
    request = OPENAI.parse_request(json.dumps({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}).encode())
    with pytest.raises(InvalidRequest) as info:
        RESPONSES.encode_request(request)
    assert info.value.param == "n"


def test_anthropic_request_to_responses() -> None:
    body = {"model": "claude-sonnet-5-5", "max_tokens": 500, "system": [{"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}, "top_k": 5, "stop_sequences": ["END"],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": CITY}, {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}, {"type": "text", "text": "weather?"}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "Checking."},
                                                  {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "15C", "is_error": True}, {"type": "text", "text": "and tomorrow?"}]}]}
    request = ANTHROPIC.parse_request(json.dumps(body).encode())
    assert RESPONSES.encode_request(request) == ({
        "model": "claude-sonnet-5-5", "instructions": "Long context.",
        "input": [
            {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                                         {"type": "input_text", "text": "weather?"}]},
            {"role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{\"city\": \"SF\"}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "15C"},
            {"role": "user", "content": "and tomorrow?"}],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": CITY, "strict": False}, {"type": "web_search"}],
        "tool_choice": {"type": "function", "name": "get_weather"}, "max_output_tokens": 500, "store": False,
    }, ["text.cache_control", "thinking", "tool_result.is_error", "tools.web_search_20250305.max_uses", "stop_sequences", "top_k"])


# --- a Responses upstream's answer to the other clients -----------------------------------------

CHAT_CLIENT = OPENAI.parse_request(json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode())
ANTHROPIC_CLIENT = ANTHROPIC.parse_request(json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).encode())
ANSWERS = {  # fixture -> (chat message, finish_reason, Anthropic content, stop_reason, lossy beyond service_tier)
    "text": ({"content": F.load("responses", "text")["output"][0]["content"][0]["text"]}, "stop",
             [{"type": "text", "text": F.load("responses", "text")["output"][0]["content"][0]["text"]}], "end_turn", []),
    "function_calls": ({"content": None, "tool_calls": [
        {"id": "call_uAZ3TmwVeG8c4rZNyUrW7Qvx", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}"}},
        {"id": "call_2bR5yQ8dKx9M3nPqLw4Ee1Tf", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Bogotá, Colombia\"}"}}]},
        "tool_calls", [
        {"type": "tool_use", "id": "call_uAZ3TmwVeG8c4rZNyUrW7Qvx", "name": "get_weather", "input": {"location": "Paris, France"}},
        {"type": "tool_use", "id": "call_2bR5yQ8dKx9M3nPqLw4Ee1Tf", "name": "get_weather", "input": {"location": "Bogotá, Colombia"}}], "tool_use", []),
    "incomplete": ({"content": "Once upon a time, in a land of silver"}, "length",
                   [{"type": "text", "text": "Once upon a time, in a land of silver"}], "max_tokens", []),
    "refusal": ({"content": None, "refusal": "I'm sorry, I can't assist with that request."}, "stop",
                [{"type": "text", "text": "I'm sorry, I can't assist with that request."}], "end_turn", []),
    "web_search": ({"content": "As of today, March 9, 2025, one notable positive news story..."}, "stop",
                   [{"type": "text", "text": "As of today, March 9, 2025, one notable positive news story..."}], "end_turn",
                   ["content.web_search_call", "text.annotations"]),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_responses_answer_to_chat_and_anthropic_clients(name: str) -> None:
    upstream = F.load("responses", name)
    message, finish, content, stop, lossy = ANSWERS[name]
    body, got = OPENAI.encode_response(RESPONSES.decode_response(upstream), CHAT_CLIENT)
    assert body["id"] == upstream["id"] and body["model"] == upstream["model"]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": None, **message}
    assert body["choices"][0]["finish_reason"] == finish
    assert body["usage"]["prompt_tokens"] == upstream["usage"]["input_tokens"]
    assert got == [*lossy, "service_tier"]
    body, got = ANTHROPIC.encode_response(RESPONSES.decode_response(upstream), ANTHROPIC_CLIENT)
    assert (body["content"], body["stop_reason"]) == (content, stop)
    assert body["usage"]["input_tokens"] + body["usage"]["cache_read_input_tokens"] == upstream["usage"]["input_tokens"]
    assert got == [*lossy, "service_tier"]


def test_reasoning_to_chat_and_anthropic_clients() -> None:
    upstream = F.load("responses", "reasoning")
    body, lossy = OPENAI.encode_response(RESPONSES.decode_response(upstream), CHAT_CLIENT)
    assert body["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 192}
    assert lossy == ["thinking", "thinking.encrypted_content", "service_tier"]
    body, lossy = ANTHROPIC.encode_response(RESPONSES.decode_response(upstream), ANTHROPIC_CLIENT)
    assert body["content"][0] == {"type": "thinking", "thinking": "**Answering a simple question**\n\nThe user asks for the capital of France."
                                  "\n\n**Checking**\n\nIt is Paris.", "signature": ""}
    assert lossy == ["thinking.encrypted_content", "service_tier"]


# --- the other upstreams' answers to a Responses client ---------------------------------------

CLIENT = F.parse({"model": "gpt-4.1", "input": "hi"})
OTHER = [("openai", OPENAI, name) for name in CodecFixtures("openai", OPENAI).responses] + [
    ("anthropic", ANTHROPIC, name) for name in CodecFixtures("anthropic", ANTHROPIC).responses]


@pytest.mark.parametrize(("fmt", "codec", "name"), OTHER, ids=[f"{f}/{n}" for f, _, n in OTHER])
def test_other_answers_to_a_responses_client(fmt: str, codec: Any, name: str) -> None:
    answer = codec.decode_response(CodecFixtures(fmt, codec).load("responses", name))
    body, _ = RESPONSES.encode_response(answer, CLIENT)
    parsed = Response.model_validate(body)  # every field the SDK requires
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["model"] == answer.model
    assert parsed.output_text == "".join(b.text for b in answer.content if getattr(b, "type", None) == "text" and not b.refusal)
    calls = [(i.call_id, i.name, i.arguments) for i in parsed.output if i.type == "function_call"]
    assert calls == [(b.id, b.name, b.raw_arguments if b.raw_arguments is not None else json.dumps(b.input, ensure_ascii=False))
                     for b in answer.content if getattr(b, "type", None) == "tool_call"]
    assert body["status"] == ("incomplete" if answer.stop_reason in ("max_tokens", "content_filter", "refusal") else "completed")
    assert body["usage"]["input_tokens"] == answer.usage.prompt_tokens
    assert body["usage"]["total_tokens"] == answer.usage.prompt_tokens + answer.usage.output_tokens


def test_anthropic_answer_to_a_responses_client_exactly() -> None:
    answer = ANTHROPIC.decode_response({
        "id": "msg_01X", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "tool_use", "stop_sequence": None,
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}}],
        "usage": {"input_tokens": 12, "output_tokens": 6, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 1}})
    body, lossy = RESPONSES.encode_response(answer, CLIENT)
    for item in body["output"]:
        assert item.pop("id")[:3] in ("rs_", "msg", "fc_")
    assert body["output"] == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]},
        {"type": "message", "status": "completed", "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Checking."}], "role": "assistant"},
        {"type": "function_call", "status": "completed", "arguments": "{\"city\": \"SF\"}", "call_id": "toolu_1", "name": "get_weather"},
    ]
    assert body["usage"] == {"input_tokens": 16, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 1},
                             "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 22}
    assert (body["status"], body["incomplete_details"]) == ("completed", None)
    assert re.fullmatch(r"resp_[0-9a-f]{24}", body["id"])  # the router's own: another API's may repeat
    assert lossy == ["thinking.signature"]


# --- files: carried where the target reads them -------------------------------------------------


def test_input_files_go_where_the_target_can_read_them() -> None:
    body = F.load("requests", "multimodal")
    body["input"][0]["content"] += [{"type": "input_file", "file_id": "file-abc"},
                                    {"type": "input_file", "file_url": "https://example.com/a.pdf", "filename": "a.pdf"}]
    chat, lossy = OPENAI.encode_request(F.parse(body))
    assert chat["messages"][0]["content"][3:] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "draconomicon.pdf"}},
        {"type": "file", "file": {"file_id": "file-abc"}},  # the same OpenAI file store
    ]
    assert lossy == ["content.file"]  # chat completions reads no file by URL
    claude, lossy = ANTHROPIC.encode_request(F.parse(body), default_max_tokens=DEFAULT_MAX_TOKENS)
    assert claude["messages"][0]["content"][3:] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}, "title": "draconomicon.pdf"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}, "title": "a.pdf"},
    ]
    assert lossy == ["image.detail", "content.file"]  # an OpenAI file id means nothing to Anthropic


def test_files_of_the_other_apis_reach_a_responses_upstream() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}}]}]}
    assert RESPONSES.encode_request(OPENAI.parse_request(json.dumps(chat).encode()))[0]["input"][0]["content"][1] == {
        "type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}
    claude = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}, "title": "b.pdf"}, {"type": "text", "text": "sum up"}]}]}
    assert RESPONSES.encode_request(ANTHROPIC.parse_request(json.dumps(claude).encode()))[0]["input"][0]["content"][0] == {
        "type": "input_file", "file_url": "https://example.com/b.pdf", "filename": "b.pdf"}
