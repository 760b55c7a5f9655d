"""Bedrock's wire: the event-stream framing (read by botocore's parser, at
every byte split), and the Converse codec over the recorded bodies and
streams of ``tests/fixtures/converse`` and ``converse-stream``, whose shapes
botocore's ``bedrock-runtime`` service model accepts."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.codec_fixtures import FIXTURE_DIR
from tests.fake_bedrock import converse_event, event_frame, exception_frame, frames_of
from tests.fake_upstream import anthropic_sse
from tornrouter.accumulate import Accumulator
from tornrouter.canonical import ChatResponse, Text, Thinking, ToolCall, Usage
from tornrouter.formats import codec_for
from tornrouter.formats.converse.stream import ConverseStreamDecoder
from tornrouter.providers.aws import EventStreamFraming
from tornrouter.validate_stream import validate

CONVERSE = codec_for("converse")
MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


def response(name: str) -> dict[str, Any]:
    return json.loads((FIXTURE_DIR / "converse" / "responses" / f"{name}.json").read_text())


def transcript(name: str) -> list[bytes]:
    return [converse_event(kind, payload) for kind, payload in
            json.loads((FIXTURE_DIR / "converse-stream" / f"{name}.json").read_text())]


# --- the framing ------------------------------------------------------------------------------


def test_frames_read_the_same_at_every_byte_split() -> None:
    data = b"".join(frames_of(anthropic_sse("Héllo wörld 👋", model="claude-fake")))
    whole = [(e.event, e.data) for e in EventStreamFraming().feed(data)]
    assert [kind for kind, _ in whole][:3] == ["message_start", "ping", "content_block_start"]
    for cut in range(1, len(data)):
        framing = EventStreamFraming()
        events = list(framing.feed(data[:cut])) + list(framing.feed(data[cut:]))
        assert [(e.event, e.data) for e in events] == whole, cut


def test_a_corrupt_frame_is_a_value_error() -> None:
    frame = bytearray(event_frame({"type": "ping"}))
    frame[-1] ^= 0xFF  # the message CRC
    with pytest.raises(ValueError, match="malformed event-stream frame"):
        list(EventStreamFraming().feed(bytes(frame)))


def test_an_exception_frame_is_an_anthropic_error_event() -> None:
    (event,) = EventStreamFraming().feed(exception_frame("throttlingException", "Too many tokens."))
    assert event.event == "error"
    assert json.loads(event.data) == {"type": "error", "error": {"type": "rate_limit_error",
                                                                  "message": "throttlingException: Too many tokens."}}


# --- Converse ---------------------------------------------------------------------------------

RESPONSES = {
    "text": ([Text("Héllo wörld — 世界 👋!")], "end_turn", Usage(15, 11), set()),
    "tool_use": ([Text("I'll look that up."), ToolCall("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", {"sign": "WZPZ"})],
                 "tool_use", Usage(375, 56, cache_read_tokens=256), set()),
    "reasoning": ([Thinking("The user greets me.", "EqoBCkgIARABGAIiQFx"), Text("Hi there.")], "end_turn", Usage(20, 30), set()),
    "guardrail": ([Text("Sorry, the model cannot answer this question.")], "content_filter", Usage(9, 0), {"trace"}),
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_a_converse_response_decodes(name: str) -> None:
    report = ParamValidator().validate(response(name), MODEL.operation_model("Converse").output_shape)
    assert not report.has_errors(), report.generate_report()
    content, stop, usage, extras = RESPONSES[name]
    decoded = CONVERSE.decode_response(response(name))
    assert (decoded.content, decoded.stop_reason, decoded.usage, set(decoded.extra)) == (content, stop, usage, extras)


def accumulate(name: str) -> ChatResponse:
    decoder, acc = ConverseStreamDecoder("meta.llama"), Accumulator("converse")
    for event in EventStreamFraming().feed(b"".join(transcript(name))):
        for item in decoder.feed_sse(event):
            acc.add(item)
    for item in decoder.close():
        acc.add(item)
    assert acc.finished
    return acc.response()


@pytest.mark.parametrize("name", ["tool_use", "reasoning"])
def test_a_converse_stream_accumulates_to_the_whole_answer(name: str) -> None:
    streamed, whole = accumulate(name), CONVERSE.decode_response(response(name))
    assert (streamed.content, streamed.stop_reason, streamed.usage) == (whole.content, whole.stop_reason, whole.usage)


@pytest.mark.parametrize("client", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("name", ["tool_use", "reasoning"])
def test_a_converse_stream_translates_to_every_client(name: str, client: str) -> None:
    codec = codec_for(client)
    body = {"openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            "anthropic": {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "stream": True},
            "responses": {"model": "m", "input": "hi", "stream": True}}[client]
    encoder = codec.stream_encoder(codec.parse_request(json.dumps(body).encode()), source="converse")
    decoder = ConverseStreamDecoder("meta.llama")
    raw = b"".join(encoder.encode(item) for event in EventStreamFraming().feed(b"".join(transcript(name)))
                   for item in decoder.feed_sse(event))
    assert validate(raw, client) == []


def test_a_converse_request_fits_botocores_shape() -> None:
    request = codec_for("anthropic").parse_request(json.dumps({
        "model": "m", "max_tokens": 100, "temperature": 0.5, "stop_sequences": ["END"],
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "top_song", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "top_song"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "song?"},
                                         {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                                          "title": "notes.v2.pdf"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                              {"type": "tool_use", "id": "t1", "name": "top_song", "input": {"sign": "WZPZ"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Bad", "is_error": True}]},
        ]}).encode())
    body, lossy = CONVERSE.encode_request(request)
    report = ParamValidator().validate({"modelId": "m", **body}, MODEL.operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "top_song"}}
    assert body["messages"][0]["content"][1] == {"document": {"format": "pdf", "name": "notes v2 pdf", "source": {"bytes": "JVBERi0="}}}
    assert body["messages"][2]["content"] == [{"toolResult": {"toolUseId": "t1", "content": [{"text": "Bad"}], "status": "error"}}]
    assert lossy == []
