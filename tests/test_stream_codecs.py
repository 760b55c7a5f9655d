"""The chat-completions and Anthropic stream codecs, table-driven over recorded
transcripts (the Responses one's: ``test_stream_responses.py``), and the
stream grammar every encoder keeps.

Every transcript is decoded to canonical events and accumulated; re-encoded
into both APIs it must pass ``validate_stream`` and be read by the official
SDK (through a mock transport, so their own SSE parsing and accumulation run)
into the same answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.codec_fixtures import FIXTURE_DIR, transcript
from tornrouter.accumulate import Accumulator, StreamOrderError, replay
from tornrouter.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    StreamError,
    StreamEvent,
    Text,
    Thinking,
    ToolCall,
    Usage,
)
from tornrouter.formats.anthropic.codec import AnthropicCodec
from tornrouter.formats.anthropic.stream import AnthropicStreamDecoder, AnthropicStreamEncoder
from tornrouter.formats.openai.stream import OpenAIStreamDecoder, OpenAIStreamEncoder
from tornrouter.formats.responses.stream import ResponsesStreamEncoder
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import main as validate_main
from tornrouter.validate_stream import validate

CREATED = 1_750_000_000


def decode_anthropic(data: bytes) -> list[StreamEvent]:
    sse, decoder = SSEDecoder(), AnthropicStreamDecoder()
    events = [e for s in sse.feed(data) for e in decoder.feed(s.event, json.loads(s.data))]
    assert not sse.close()
    return events


def decode_openai(data: bytes) -> list[StreamEvent]:
    sse, decoder = SSEDecoder(), OpenAIStreamDecoder()
    events = [e for s in sse.feed(data) for e in decoder.feed(s.data if s.data == "[DONE]" else json.loads(s.data))]
    assert not sse.close()
    return events + decoder.close()


def accumulate(events: list[StreamEvent], source: str | None) -> ChatResponse:
    acc = Accumulator(source)
    for event in events:
        acc.add(event)
    assert acc.finished
    return acc.response()


def encode(encoder: AnthropicStreamEncoder | OpenAIStreamEncoder, events: list[StreamEvent]) -> bytes:
    out = b"".join(encoder.encode(e) for e in events)
    assert encoder.terminated
    return out


def _transport(body: bytes) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def anthropic_sdk_message(body: bytes) -> dict[str, Any]:
    """The final message anthropic-sdk-python's MessageStream builds from ``body``."""
    client = anthropic.Anthropic(
        api_key="k", base_url="http://upstream.test", http_client=_transport(body), max_retries=0
    )
    with client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "hi"}]) as stream:
        return stream.get_final_message().to_dict()


def openai_sdk_completion(body: bytes) -> dict[str, Any]:
    """The completion openai-python's ChatCompletionStream builds from ``body``; every chunk
    must also validate as a ``ChatCompletionChunk``."""
    for sse in SSEDecoder().feed(body):
        if sse.data != "[DONE]" and "error" not in sse.json():
            ChatCompletionChunk.model_validate(sse.json())
    client = openai.OpenAI(api_key="k", base_url="http://upstream.test/v1", http_client=_transport(body), max_retries=0)
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as stream:
        for _ in stream:
            pass
        try:
            return stream.get_final_completion().to_dict()
        except openai.LengthFinishReasonError as exc:  # raised for finish_reason "length", completion attached
            return exc.completion.to_dict()


def wire_usage_zeros_dropped(message: dict[str, Any]) -> dict[str, Any]:
    """The canonical usage cannot tell an absent cache count from 0, so the encoder writes 0."""
    for holder in (message, message.get("message") or {}):
        if isinstance(holder.get("usage"), dict):
            holder["usage"] = {k: v for k, v in holder["usage"].items() if v != 0}
    return message


def without_none_extras(response: ChatResponse) -> ChatResponse:
    response.extra = {k: v for k, v in response.extra.items() if v is not None}
    return response


# --- Anthropic transcripts -------------------------------------------------------

ANTHROPIC_CASES = {
    "basic_response.txt": dict(content=[Text("Hello there!")], stop_reason="end_turn", usage=Usage(11, 6)),
    "extra_fields_response.txt": dict(
        content=[Text("Hello!")],
        stop_reason="end_turn",
        usage=Usage(11, 3),
        extra={"private_field": {"nested": {"values": [1, 2]}}},
    ),
    "tool_use_response.txt": dict(
        content=[
            Text("I'll check the current weather in Paris for you."),
            ToolCall(
                "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "get_weather",
                {"location": "Paris"},
                extra={"caller": {"type": "direct"}},
            ),
        ],
        stop_reason="tool_use",
        usage=Usage(377, 65, extra={"service_tier": "standard"}),
    ),
    "server_tool_use_response.txt": dict(
        content=[
            Text("Let me search for that."),
            Opaque(
                "anthropic",
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_01WebSearch",
                    "name": "web_search",
                    "input": {"query": "weather in Paris"},
                },
            ),
        ],
        stop_reason="end_turn",
        usage=Usage(42, 40, extra={"service_tier": "standard"}),
    ),
}


@pytest.mark.parametrize("name", sorted(ANTHROPIC_CASES))
def test_anthropic_transcript_accumulates_to_the_answer(name: str) -> None:
    data = transcript("anthropic-sse", name)
    assert validate(data) == []
    response = accumulate(decode_anthropic(data), "anthropic")
    for field, value in ANTHROPIC_CASES[name].items():
        assert getattr(response, field) == value, field
    # ... the same answer as the SDK's own accumulation, read by the non-streaming codec.
    assert response == without_none_extras(AnthropicCodec().decode_response(anthropic_sdk_message(data)))


@pytest.mark.parametrize("name", sorted(ANTHROPIC_CASES))
def test_anthropic_relay_is_faithful(name: str) -> None:
    data = transcript("anthropic-sse", name)
    events = decode_anthropic(data)
    encoder = AnthropicStreamEncoder(source="anthropic")
    relayed = encode(encoder, events)
    assert validate(relayed, "anthropic") == []
    assert not encoder.lossy
    assert accumulate(decode_anthropic(relayed), "anthropic") == accumulate(events, "anthropic")
    assert wire_usage_zeros_dropped(anthropic_sdk_message(relayed)) == wire_usage_zeros_dropped(
        anthropic_sdk_message(data)
    )
    # Apart from the pings and the usage counts, event for event the same JSON.
    original = [wire_usage_zeros_dropped(s.json()) for s in SSEDecoder().feed(data) if s.event != "ping"]
    assert [wire_usage_zeros_dropped(s.json()) for s in SSEDecoder().feed(relayed)] == original


def test_anthropic_extra_fields_survive_a_same_format_relay() -> None:
    relayed = encode(
        AnthropicStreamEncoder(source="anthropic"),
        decode_anthropic(transcript("anthropic-sse", "extra_fields_response.txt")),
    )
    events = [s.json() for s in SSEDecoder().feed(relayed)]
    assert events[0]["message"]["private_field"] == {"nested": {"values": [1, 2]}}
    assert [e.get("private_field") for e in events if e["type"] == "content_block_delta"] == [
        {"nested": {"values": [3], "metadata": "chunk1"}},
        {"nested": {"values": [4, 5], "metadata": "chunk2"}},
    ]


@pytest.mark.parametrize("name", sorted(ANTHROPIC_CASES))
def test_anthropic_transcript_translates_to_openai(name: str) -> None:
    events = decode_anthropic(transcript("anthropic-sse", name))
    response = accumulate(events, "anthropic")
    encoder = OpenAIStreamEncoder(include_usage=True, source="anthropic", created=CREATED)
    body = encode(encoder, events)
    assert validate(body, "openai") == []
    completion = openai_sdk_completion(body)
    choice = completion["choices"][0]
    assert choice["message"]["content"] == response.text()
    calls = [b for b in response.content if isinstance(b, ToolCall)]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in choice["message"].get("tool_calls") or []
    ] == [(c.id, c.name, c.input) for c in calls]
    assert choice["finish_reason"] == {"end_turn": "stop", "tool_use": "tool_calls"}[response.stop_reason]
    assert completion["usage"]["prompt_tokens"] == response.usage.prompt_tokens
    assert completion["usage"]["completion_tokens"] == response.usage.output_tokens
    assert completion["created"] == CREATED and completion["id"] == response.id
    if name == "server_tool_use_response.txt":
        assert "content.server_tool_use" in encoder.lossy
    # The OpenAI transcript, read back, is the same answer less what OpenAI cannot carry.
    back = accumulate(decode_openai(body), "openai")
    assert back.text() == response.text()
    assert [b for b in back.content if isinstance(b, ToolCall)] == [ToolCall(c.id, c.name, c.input) for c in calls]


# --- OpenAI transcripts ------------------------------------------------------------

OPENAI_CASES = {
    "text.txt": dict(content=[Text("Héllo wörld — 世界 👋!")], stop_reason="end_turn", usage=Usage()),
    "text_with_usage.txt": dict(
        content=[Text("The answer is 42.")], stop_reason="max_tokens", usage=Usage(52, 5, cache_read_tokens=2048)
    ),
    "parallel_tool_calls.txt": dict(
        content=[
            ToolCall("call_Paris0001", "get_weather", {"location": "Paris"}),
            ToolCall("call_Tokyo0002", "get_weather", {"location": "Tōkyō"}),
        ],
        stop_reason="tool_use",
        usage=Usage(82, 46),
    ),
    "reasoning_content.txt": dict(
        content=[Thinking("The user greets me. Reply briefly."), Text("Hi there.")],
        stop_reason="end_turn",
        usage=Usage(10, 12),
    ),
}


@pytest.mark.parametrize("name", sorted(OPENAI_CASES))
def test_openai_transcript_accumulates_to_the_answer(name: str) -> None:
    data = transcript("openai-sse", name)
    assert validate(data) == []
    response = accumulate(decode_openai(data), "openai")
    expected = OPENAI_CASES[name]
    assert response.content == expected["content"]
    assert response.stop_reason == expected["stop_reason"]
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cache_read_tokens) == (
        expected["usage"].input_tokens,
        expected["usage"].output_tokens,
        expected["usage"].cache_read_tokens,
    )
    message = openai_sdk_completion(data)["choices"][0]["message"]
    assert message["content"] == (response.text() or None)


@pytest.mark.parametrize("name", sorted(OPENAI_CASES))
def test_openai_transcript_translates_to_anthropic(name: str) -> None:
    events = decode_openai(transcript("openai-sse", name))
    response = accumulate(events, "openai")
    encoder = AnthropicStreamEncoder(source="openai")
    body = encode(encoder, events)
    assert validate(body, "anthropic") == []
    assert "system_fingerprint" in encoder.lossy or name == "reasoning_content.txt"
    message = anthropic_sdk_message(body)
    back = accumulate(decode_anthropic(body), "anthropic")
    assert [type(b) for b in back.content] == [type(b) for b in response.content]
    assert back.text() == response.text() == "".join(b["text"] for b in message["content"] if b["type"] == "text")
    assert (
        [b.input for b in back.content if isinstance(b, ToolCall)]
        == [b["input"] for b in message["content"] if b["type"] == "tool_use"]
        == [b.input for b in response.content if isinstance(b, ToolCall)]
    )
    assert message["stop_reason"] == response.stop_reason
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )


@pytest.mark.parametrize("name", sorted(OPENAI_CASES))
def test_openai_relay_reads_the_same(name: str) -> None:
    data = transcript("openai-sse", name)
    events = decode_openai(data)
    body = encode(OpenAIStreamEncoder(include_usage=True, source="openai"), events)
    assert validate(body, "openai") == []
    original, relayed = openai_sdk_completion(data), openai_sdk_completion(body)
    for completion in (original, relayed):
        completion.pop("usage", None)  # the relay always asks for usage; the text fixture did not
        message = completion["choices"][0]["message"]
        # The encoder opens with content "" before it knows whether text follows; OpenAI, with null.
        message["content"] = message["content"] or None
        for call in message.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert relayed == original


# --- errors mid-stream ---------------------------------------------------------------


def partial_stream() -> list[StreamEvent]:
    return [MessageStart("msg_1", "m", Usage(5, 1)), BlockStart(0, Text("")), BlockDelta(0, "text", "Hel")]


def test_anthropic_error_event_ends_the_stream() -> None:
    encoder = AnthropicStreamEncoder()
    body = b"".join(encoder.encode(e) for e in partial_stream()) + encoder.finish_with_error("Overloaded", 529)
    assert encoder.terminated
    assert body.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    assert validate(body) == []
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        anthropic_sdk_message(body)
    events = decode_anthropic(body)
    assert events[-1] == StreamError(529, "Overloaded")
    acc = Accumulator()
    for event in events:
        acc.add(event)
    assert acc.finished and acc.error == StreamError(529, "Overloaded")
    assert acc.response().content == [Text("Hel")]  # what arrived, for the request log
    with pytest.raises(StreamOrderError):
        encoder.encode(MessageStop())


def test_openai_error_line_ends_the_stream() -> None:
    encoder = OpenAIStreamEncoder(created=CREATED)
    body = b"".join(encoder.encode(e) for e in partial_stream()) + encoder.finish_with_error("rate limited", 429)
    assert body.endswith(
        b'data: {"error":{"message":"rate limited","type":"rate_limit_error","param":null,"code":null}}\n\n'
    )
    assert validate(body) == []
    with pytest.raises(openai.APIError, match="rate limited"):
        openai_sdk_completion(body)
    assert decode_openai(body)[-1] == StreamError(429, "rate limited")


def test_openai_stream_cut_before_finish_is_an_error() -> None:
    decoder = OpenAIStreamDecoder()
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    assert [type(e) for e in decoder.feed(chunk)] == [MessageStart, BlockStart, BlockDelta]
    assert decoder.close() == [StreamError(502, "upstream stream ended before it finished")]


def test_openai_stream_without_done_but_finished_completes() -> None:
    decoder = OpenAIStreamDecoder()
    decoder.feed(
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}
    )
    assert decoder.close() == [MessageDelta("end_turn", None, None), MessageStop()]
    with pytest.raises(ValueError):
        decoder.feed("[DONE]")


def test_openai_interleaved_tool_calls_are_refused() -> None:
    decoder = OpenAIStreamDecoder()

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}],
        }

    decoder.feed(call(0, id="a", type="function", function={"name": "f", "arguments": "{"}))
    decoder.feed(call(1, id="b", type="function", function={"name": "g", "arguments": "{"}))
    with pytest.raises(ValueError, match="interleaved"):
        decoder.feed(call(0, function={"arguments": "}"}))


# --- the grammar: encoders and the accumulator refuse impossible orders ------------------

START = MessageStart("msg_1", "m")
END = [MessageDelta("end_turn"), MessageStop()]
ILLEGAL = {
    "delta before message start": [BlockDelta(0, "text", "x")],
    "second message start": [START, START],
    "delta for a block never started": [START, BlockDelta(0, "text", "x")],
    "block index skipped": [START, BlockStart(1, Text(""))],
    "block index reused": [START, BlockStart(0, Text("")), BlockStop(0), BlockStart(0, Text(""))],
    "stop for a block never started": [START, BlockStop(0)],
    "block stopped twice": [START, BlockStart(0, Text("")), BlockStop(0), BlockStop(0)],
    "delta after its block stopped": [START, BlockStart(0, Text("")), BlockStop(0), BlockDelta(0, "text", "x")],
    "delta kind unfit for the block": [START, BlockStart(0, Text("")), BlockDelta(0, "tool_input", "{")],
    "message delta with a block open": [START, BlockStart(0, Text("")), MessageDelta("end_turn")],
    "block after message delta": [START, MessageDelta("end_turn"), BlockStart(0, Text(""))],
    "second message delta": [START, MessageDelta("end_turn"), MessageDelta("end_turn")],
    "message stop without delta": [START, MessageStop()],
    "anything after message stop": [START, *END, BlockStart(0, Text(""))],
    "anything after an error": [START, StreamError(500, "x"), MessageStop()],
    "a second error": [StreamError(500, "x"), StreamError(500, "y")],
}


@pytest.mark.parametrize("case", sorted(ILLEGAL))
@pytest.mark.parametrize("sink", ["anthropic", "openai", "responses", "accumulator"])
def test_illegal_order_is_refused(case: str, sink: str) -> None:
    *legal, last = ILLEGAL[case]
    target = {
        "anthropic": AnthropicStreamEncoder,
        "openai": OpenAIStreamEncoder,
        "responses": lambda: ResponsesStreamEncoder(ChatRequest("m", "responses")),
        "accumulator": Accumulator,
    }[sink]()
    feed = target.add if isinstance(target, Accumulator) else target.encode
    for event in legal:
        feed(event)
    with pytest.raises(StreamOrderError):
        feed(last)


def test_finish_with_error_after_the_end_is_refused() -> None:
    for encoder in (AnthropicStreamEncoder(), OpenAIStreamEncoder(), ResponsesStreamEncoder(ChatRequest("m", "responses"))):
        for event in [START, *END]:
            encoder.encode(event)
        assert encoder.terminated
        with pytest.raises(StreamOrderError):
            encoder.finish_with_error("late")


# --- exact bytes ---------------------------------------------------------------------------


def test_anthropic_encoder_writes_every_block_kind() -> None:
    events = [
        MessageStart("msg_1", "claude-x", Usage(10, 1)),
        BlockStart(0, Thinking()),
        BlockDelta(0, "thinking", "hmm"),
        BlockDelta(0, "signature", "sig=="),
        BlockStop(0),
        BlockStart(1, Text("")),
        BlockDelta(1, "text", "Hi"),
        BlockStop(1),
        BlockStart(2, ToolCall("toolu_1", "f")),
        BlockDelta(2, "tool_input", '{"a":'),
        BlockDelta(2, "tool_input", " 1}"),
        BlockStop(2),
        MessageDelta("tool_use", None, Usage(output_tokens=20)),
        MessageStop(),
    ]
    body = encode(AnthropicStreamEncoder(), events)
    assert validate(body) == []
    lines = [(s.event, s.json()) for s in SSEDecoder().feed(body)]
    assert lines[0] == (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 10,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )
    assert [d for _, d in lines[1:5]] == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}},
        {"type": "content_block_stop", "index": 0},
    ]
    assert lines[-2] == (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 20},  # only the counts the delta changes
        },
    )
    assert body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    message = anthropic_sdk_message(body)
    assert message["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
    ]
    assert accumulate(events, None).content == [
        Thinking("hmm", "sig=="),
        Text("Hi"),
        ToolCall("toolu_1", "f", {"a": 1}),
    ]


def test_openai_encoder_exact_chunks_and_lossy_thinking() -> None:
    events = [
        MessageStart("chatcmpl-1", "gpt-x", Usage(7, 0)),
        BlockStart(0, Thinking()),
        BlockDelta(0, "thinking", "hmm"),
        BlockStop(0),
        BlockStart(1, Text("")),
        BlockDelta(1, "text", "Hi"),
        BlockStop(1),
        MessageDelta("end_turn", None, Usage(output_tokens=3)),
        MessageStop(),
    ]
    encoder = OpenAIStreamEncoder(include_usage=True, created=CREATED)
    body = encode(encoder, events)
    head = f'"id":"chatcmpl-1","object":"chat.completion.chunk","created":{CREATED},"model":"gpt-x"'
    assert body.decode().split("\n\n") == [
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}',
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"content":"Hi"}},"logprobs":null,"finish_reason":null}}]}}',
        f'data: {{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}',
        f'data: {{{head},"choices":[],"usage":{{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{{"cached_tokens":0}}}}}}',
        "data: [DONE]",
        "",
    ]
    assert list(encoder.lossy) == ["thinking"]


def test_blocks_that_arrive_whole_are_sent_as_deltas() -> None:
    events = [
        START,
        BlockStart(0, Text("whole")),
        BlockStop(0),
        BlockStart(1, ToolCall("call_1", "f", {"x": [1]})),
        BlockStop(1),
        *END,
    ]
    anthropic_body = encode(AnthropicStreamEncoder(), events)
    assert validate(anthropic_body) == []
    assert accumulate(decode_anthropic(anthropic_body), None).content == [
        Text("whole"),
        ToolCall("call_1", "f", {"x": [1]}),
    ]
    openai_body = encode(OpenAIStreamEncoder(created=CREATED), events)
    assert validate(openai_body) == []
    message = openai_sdk_completion(openai_body)["choices"][0]["message"]
    assert message["content"] == "whole" and json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"x": [1]}


@pytest.mark.parametrize(
    "call",
    [ToolCall("call_1", "f", {"x": [1]}), ToolCall("call_2", "f", raw_arguments='{"x": '), ToolCall("call_3", "f", raw_arguments="[1]")],
    ids=["object", "cut-short", "not-an-object"],
)
def test_replay_is_the_inverse_of_the_accumulator(call: ToolCall) -> None:
    response = ChatResponse("msg_1", "m", [Text("calling"), call], "tool_use", usage=Usage(3, 4))
    assert accumulate(replay(response, text_piece=3), None) == response


# --- the validator --------------------------------------------------------------------------

BROKEN_ANTHROPIC = {
    "no terminal event": (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
        b'"content":[],"model":"x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}\n\n',
        "no terminal event (message_stop or error)",
    ),
    "delta before start": (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        "event 1 (content_block_delta): comes before message_start",
    ),
    "name and type differ": (
        b'event: message_stop\ndata: {"type":"ping"}\n\n',
        "event 1 (message_stop): event name 'message_stop' differs from data type 'ping'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_ANTHROPIC))
def test_validator_names_the_problem(case: str) -> None:
    data, problem = BROKEN_ANTHROPIC[case]
    assert problem in validate(data, "anthropic")


def test_validator_catches_a_broken_translation() -> None:
    body = transcript("anthropic-sse", "tool_use_response.txt")
    broken = body.replace(b'"index":1,"delta"', b'"index":2,"delta"', 1)
    assert "event 8 (content_block_delta): delta for block 2, which is not open" in validate(broken)
    openai_body = transcript("openai-sse", "parallel_tool_calls.txt")
    assert validate(openai_body.replace(b"data: [DONE]\n\n", b"")) == ["no terminal event ([DONE] or error)"]
    assert "tool call 1's arguments is not valid JSON" in " ".join(validate(openai_body.replace(b'": \\"T', b'": T')))


def test_validator_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(transcript("anthropic-sse", "basic_response.txt"))
    assert validate_main([str(good)]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert validate_main([str(FIXTURE_DIR / "anthropic-sse" / "basic_response.txt"), "--format", "anthropic"]) == 1
    assert "mid-event" in capsys.readouterr().out


def test_anthropic_decoder_skips_what_it_does_not_know_and_keeps_citations() -> None:
    decoder = AnthropicStreamDecoder()
    assert decoder.feed("ping", {"type": "ping"}) == []
    assert decoder.feed("future_event", {"type": "future_event"}) == []
    assert (
        decoder.feed("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "x"}}) == []
    )
    citation = {"type": "web_search_result_location", "url": "https://example.com", "cited_text": "sunny"}
    events = [
        START,
        BlockStart(0, Text("", {"citations": []})),
        *decoder.feed(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sunny."}},
        ),
        *decoder.feed(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": citation}},
        ),
        BlockStop(0),
        *END,
    ]
    assert accumulate(events, "anthropic").content == [Text("Sunny.", {"citations": [citation]})]
    body = encode(AnthropicStreamEncoder(source="anthropic"), events)
    assert validate(body) == []
    assert anthropic_sdk_message(body)["content"] == [{"type": "text", "text": "Sunny.", "citations": [citation]}]
    encoder = OpenAIStreamEncoder(source="anthropic")
    encode(encoder, events)
    assert "text.citations" in encoder.lossy
    with pytest.raises(ValueError, match="malformed Anthropic content_block_start"):
        decoder.feed("content_block_start", {"type": "content_block_start", "index": 0})


def test_the_serving_path_does_not_import_the_validator() -> None:
    """``validate_stream`` is test and operator tooling, not part of serving."""
    code = "import sys, tornrouter.runtime, tornrouter.cli; sys.exit('tornrouter.validate_stream' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
