"""The Responses stream codec, table-driven over recorded transcripts, and the
validator's Responses rules.

Every transcript is decoded to canonical events and accumulated into the
answer the non-streaming codec reads from its final ``response.completed``;
re-encoded into each API it must pass ``validate_stream`` and be read by the
official SDK (through a mock transport, so its own SSE parsing and
accumulation run) into the same answer.  Streams of the other APIs,
re-encoded as Responses streams, must be read by the official SDK's
``client.responses.stream`` just as well.
"""

from __future__ import annotations

import re

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.codec_fixtures import FIXTURE_DIR, transcript
from tornrouter.accumulate import Accumulator, replay
from tornrouter.canonical import (
    BlockDelta,
    BlockStart,
    BlockStop,
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
from tornrouter.formats.anthropic.stream import AnthropicStreamDecoder, AnthropicStreamEncoder
from tornrouter.formats.openai.stream import OpenAIStreamDecoder, OpenAIStreamEncoder
from tornrouter.formats.responses.codec import ResponsesCodec
from tornrouter.formats.responses.stream import ResponsesStreamDecoder, ResponsesStreamEncoder
from tornrouter.sse import SSEDecoder
from tornrouter.validate_stream import validate

CODEC = ResponsesCodec()
REQUEST = CODEC.parse_request(json.dumps({"model": "m", "input": "hi"}).encode())
TRANSCRIPTS = sorted(p.name for p in (FIXTURE_DIR / "responses-sse").glob("*.txt"))


def decode(data: bytes) -> list[StreamEvent]:
    sse, decoder = SSEDecoder(), ResponsesStreamDecoder()
    events = [e for s in sse.feed(data) for e in decoder.feed_sse(s)]
    assert not sse.close()
    return events + decoder.close()


def accumulate(events: list[StreamEvent], source: str | None) -> ChatResponse:
    acc = Accumulator(source)
    for event in events:
        acc.add(event)
    assert acc.finished
    return acc.response()


def encode(encoder: Any, events: list[StreamEvent]) -> bytes:
    out = b"".join(encoder.encode(e) for e in events)
    assert encoder.terminated
    return out


def _client(body: bytes) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def sdk_response(body: bytes) -> dict[str, Any]:
    """The final response openai-python's ``ResponseStream`` builds from ``body``
    (for an incomplete one, which it does not finish, its ``response.incomplete``'s)."""
    client = openai.OpenAI(api_key="k", base_url="http://upstream.test/v1", http_client=_client(body), max_retries=0)
    with client.responses.stream(model="m", input="hi") as stream:
        last = None
        for last in stream:
            pass
        if last is not None and last.type == "response.incomplete":
            return last.response.to_dict()
        return stream.get_final_response().to_dict()


def sdk_texts_and_calls(response: dict[str, Any]) -> tuple[str, list[tuple[str, str, Any]]]:
    """A final response's text and function calls (call id, name, parsed arguments)."""
    text = "".join(
        part.get("text", "") for item in response["output"] if item["type"] == "message" for part in item["content"]
    )
    calls = [(i["call_id"], i["name"], json.loads(i["arguments"])) for i in response["output"] if i["type"] == "function_call"]
    return text, calls


def final_body(data: bytes) -> dict[str, Any]:
    """The response object of a transcript's terminal event."""
    return SSEDecoder().feed(data)[-1].json()["response"]


def without_marks(response: ChatResponse) -> ChatResponse:
    """The arguments a non-streamed body sent are kept for a relay; a stream's come as deltas."""
    for block in response.content:
        if isinstance(block, ToolCall):
            block.extra.pop("arguments", None)
    return response


def calls_of(response: ChatResponse) -> list[tuple[str, str, Any]]:
    return [(b.id, b.name, b.input) for b in response.content if isinstance(b, ToolCall)]


# --- Responses transcripts -------------------------------------------------------------

CASES = {
    "text.txt": dict(text="Héllo wörld — 世界 👋!", stop="end_turn", usage=(11, 8)),
    "function_calls.txt": dict(
        calls=[("call_Paris0001", "get_weather", {"location": "Paris, France"}),
               ("call_Tokyo0002", "get_weather", {"location": "Tōkyō, Japan"})],
        stop="tool_use", usage=(291, 46),
    ),
    "reasoning.txt": dict(text="The capital of France is Paris.", stop="end_turn", usage=(13, 211),
                          thinking="**Answering a simple question**\n\nThe user asks for the capital of France.\n\n**Checking**\n\nIt is Paris."),
    "incomplete.txt": dict(text="Once upon a time, in a land of silver", stop="max_tokens", usage=(19, 16)),
    "web_search.txt": dict(text="A sea turtle was released today (example.com).", stop="end_turn", usage=(328, 30)),
}


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_accumulates_to_the_answer(name: str) -> None:
    data = transcript("responses-sse", name)
    assert validate(data) == []
    response = accumulate(decode(data), "responses")
    case = CASES[name]
    assert response.text() == case.get("text", "")
    assert calls_of(response) == case.get("calls", [])
    assert response.stop_reason == case["stop"]
    assert (response.usage.prompt_tokens, response.usage.output_tokens) == case["usage"]
    thinking = [b.thinking for b in response.content if isinstance(b, Thinking)]
    assert thinking == ([case["thinking"]] if "thinking" in case else [])
    # ... the answer the non-streaming codec reads from the final response object.
    assert response == without_marks(CODEC.decode_response(final_body(data)))
    text, calls = sdk_texts_and_calls(sdk_response(data))
    assert (text, calls) == (response.text(), calls_of(response))


def test_encrypted_reasoning_arrives_with_the_items_end() -> None:
    """``encrypted_content`` comes only in ``output_item.done``: the accumulated
    block has it, as the client needs it to send the reasoning back."""
    response = accumulate(decode(transcript("responses-sse", "reasoning.txt")), "responses")
    thinking = response.content[0]
    assert isinstance(thinking, Thinking)
    assert thinking.extra["encrypted_content"] == "gAAAAABopPPXn2ZkEncryptedReasoningStateForTheNextTurn=="
    item = CODEC.encode_response(response, REQUEST)[0]["output"][0]
    assert item["encrypted_content"] == thinking.extra["encrypted_content"]
    assert [p["text"] for p in item["summary"]] == ["**Answering a simple question**\n\nThe user asks for the capital of France.",
                                                   "**Checking**\n\nIt is Paris."]


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_relay_through_the_encoder_reads_the_same(name: str) -> None:
    data = transcript("responses-sse", name)
    events = decode(data)
    encoder = ResponsesStreamEncoder(REQUEST, source="responses")
    relayed = encode(encoder, events)
    assert validate(relayed, "responses") == []
    assert not encoder.lossy
    original, again = sdk_response(data), sdk_response(relayed)
    for response in (original, again):
        response.pop("created_at")
    assert again["output"] == original["output"] and again["usage"] == original["usage"]
    assert again["id"] == original["id"] and again["status"] == original["status"]


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_translates_to_chat_completions(name: str) -> None:
    events = decode(transcript("responses-sse", name))
    response = accumulate(events, "responses")
    encoder = OpenAIStreamEncoder(include_usage=True, source="responses", created=1)
    body = encode(encoder, events)
    assert validate(body, "openai") == []
    client = openai.OpenAI(api_key="k", base_url="http://upstream.test/v1", http_client=_client(body), max_retries=0)
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as stream:
        for _ in stream:
            pass
        try:
            completion = stream.get_final_completion().to_dict()
        except openai.LengthFinishReasonError as exc:
            completion = exc.completion.to_dict()
    message = completion["choices"][0]["message"]
    assert (message["content"] or "") == response.text()
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or ()] == calls_of(response)
    assert completion["usage"]["prompt_tokens"] == response.usage.prompt_tokens
    if name == "reasoning.txt":
        assert {"thinking", "thinking.encrypted_content"} <= set(encoder.lossy)
    if name == "web_search.txt":
        assert {"content.web_search_call", "text.annotations"} <= set(encoder.lossy)


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_translates_to_anthropic(name: str) -> None:
    events = decode(transcript("responses-sse", name))
    response = accumulate(events, "responses")
    encoder = AnthropicStreamEncoder(source="responses")
    body = encode(encoder, events)
    assert validate(body, "anthropic") == []
    client = anthropic.Anthropic(api_key="k", base_url="http://upstream.test", http_client=_client(body), max_retries=0)
    with client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "hi"}]) as stream:
        message = stream.get_final_message().to_dict()
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == response.text()
    assert [(b["id"], b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"] == calls_of(response)
    assert message["stop_reason"] == response.stop_reason
    if name == "reasoning.txt":
        assert "thinking.encrypted_content" in encoder.lossy


# --- the other APIs' transcripts as Responses streams ---------------------------------------


def decode_other(kind: str, data: bytes) -> list[StreamEvent]:
    sse = SSEDecoder()
    if kind == "anthropic-sse":
        decoder = AnthropicStreamDecoder()
        return [e for s in sse.feed(data) for e in decoder.feed(s.event, json.loads(s.data))]
    chat = OpenAIStreamDecoder()
    events = [e for s in sse.feed(data) for e in chat.feed(s.data if s.data == "[DONE]" else json.loads(s.data))]
    return events + chat.close()


OTHER = [(kind, p.name) for kind in ("anthropic-sse", "openai-sse") for p in sorted((FIXTURE_DIR / kind).glob("*.txt"))]


@pytest.mark.parametrize(("kind", "name"), OTHER, ids=[f"{k}/{n}" for k, n in OTHER])
def test_other_apis_transcripts_translate_to_responses(kind: str, name: str) -> None:
    events = decode_other(kind, transcript(kind, name))
    response = accumulate(events, kind.split("-")[0])
    encoder = ResponsesStreamEncoder(REQUEST, source=kind.split("-")[0])
    body = encode(encoder, events)
    assert validate(body, "responses") == []
    final = sdk_response(body)
    text, calls = sdk_texts_and_calls(final)
    assert text == response.text()
    assert calls == calls_of(response)
    assert final["status"] == ("incomplete" if response.stop_reason == "max_tokens" else "completed")
    assert final["usage"]["input_tokens"] == response.usage.prompt_tokens
    assert final["usage"]["output_tokens"] == response.usage.output_tokens
    assert final["id"].startswith("resp_")
    thinking = [b.thinking for b in response.content if isinstance(b, Thinking)]
    summaries = ["".join(p["text"] for p in i["summary"]) for i in final["output"] if i["type"] == "reasoning"]
    assert summaries == thinking
    # ... and read back by this codec's decoder, the same answer
    back = accumulate(decode(body), "responses")
    assert back.text() == response.text() and calls_of(back) == calls_of(response)


# --- exact bytes, and what goes wrong ---------------------------------------------------------


def test_encoder_writes_numbered_events_with_their_indices() -> None:
    events = [
        MessageStart("msg_1", "claude-x", Usage(10, 1)),
        BlockStart(0, Text("")), BlockDelta(0, "text", "Hi"), BlockStop(0),
        BlockStart(1, Text("")), BlockDelta(1, "text", " there"), BlockStop(1),
        BlockStart(2, ToolCall("toolu_1", "f")), BlockDelta(2, "tool_input", '{"a":'), BlockDelta(2, "tool_input", " 1}"), BlockStop(2),
        MessageDelta("tool_use", None, Usage(output_tokens=20)), MessageStop(),
    ]
    body = encode(ResponsesStreamEncoder(REQUEST, source="anthropic"), events)
    assert validate(body) == []
    decoded = SSEDecoder().feed(body)
    assert [e.event for e in decoded] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.content_part.added", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    payloads = [e.json() for e in decoded]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert all(e.event == p["type"] for e, p in zip(decoded, payloads))
    message_id = payloads[2]["item"]["id"]
    assert payloads[4] == {"type": "response.output_text.delta", "item_id": message_id, "output_index": 0, "content_index": 0,
                           "logprobs": [], "delta": "Hi", "sequence_number": 4}
    assert payloads[8]["content_index"] == 1 and payloads[13]["output_index"] == 1
    completed = payloads[-1]["response"]
    assert re.fullmatch(r"resp_[0-9a-f]{24}", completed["id"]) and completed["status"] == "completed"
    assert [i["type"] for i in completed["output"]] == ["message", "function_call"]
    assert [p["text"] for p in completed["output"][0]["content"]] == ["Hi", " there"]
    assert completed["output"][1] | {"id": "x"} == {"id": "x", "type": "function_call", "status": "completed",
                                                   "arguments": '{"a": 1}', "call_id": "toolu_1", "name": "f"}
    assert completed["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                                  "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 30}


def test_an_error_after_the_start_fails_the_response() -> None:
    encoder = ResponsesStreamEncoder(REQUEST)
    body = b"".join(encoder.encode(e) for e in [MessageStart("resp_1", "m"), BlockStart(0, Text("")), BlockDelta(0, "text", "Hel")])
    body += encoder.finish_with_error("upstream went away", 502)
    assert encoder.terminated
    assert validate(body) == []
    last = SSEDecoder().feed(body)[-1]
    assert last.event == "response.failed"
    failed = last.json()["response"]
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error", "message": "upstream went away"}
    assert failed["id"] == "resp_1"
    with pytest.raises(RuntimeError, match="response.completed"):
        sdk_response(body)  # the SDK's helper: no completed response, an error
    events = decode(body)
    assert events[-1] == StreamError(500, "upstream went away")
    assert accumulate(events, "responses").text() == "Hel"


def test_an_error_before_anything_is_an_error_event() -> None:
    body = ResponsesStreamEncoder(REQUEST).finish_with_error("rate limited", 429)
    assert validate(body) == []
    assert SSEDecoder().feed(body)[0].json() == {"type": "error", "code": "rate_limit_exceeded", "message": "rate limited",
                                                 "param": None, "sequence_number": 0}


def test_a_relayed_stream_taken_over_keeps_its_numbers_and_response() -> None:
    """After bytes relayed as they came, an error event goes on from the upstream's last number."""
    relayed = b"".join(part + b"\n\n" for part in transcript("responses-sse", "text.txt").split(b"\n\n")[:6])
    encoder = ResponsesStreamEncoder(REQUEST)
    encoder.take_over(MessageStart("resp_68a4f1b2c3d48193a1b2c3d4e5f6a7b80a1b2c3d4e5f6a7b", "gpt-4.1"), 6)
    body = relayed + encoder.finish_with_error("provider 'x': stream ended before it finished")
    assert validate(body, "responses") == []


def test_blocks_at_once_are_refused() -> None:
    encoder = ResponsesStreamEncoder(REQUEST)
    for event in (MessageStart("m", "m"), BlockStart(0, ToolCall("a", "f"))):
        encoder.encode(event)
    with pytest.raises(ValueError, match="one output item at a time"):
        encoder.encode(BlockStart(1, ToolCall("b", "g")))


def test_decoder_refuses_what_it_cannot_place() -> None:
    decoder = ResponsesStreamDecoder()
    decoder.feed("response.created", {"type": "response.created", "response": {"id": "resp_1", "model": "m"}})
    with pytest.raises(ValueError, match="not open"):
        decoder.feed("response.output_text.delta", {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "x"})
    with pytest.raises(ValueError, match="malformed"):
        decoder.feed("response.output_item.added", {"type": "response.output_item.added", "output_index": 0})
    assert decoder.feed("response.future_event", {"type": "response.future_event"}) == []
    assert decoder.close() == [StreamError(502, "upstream stream ended before it finished")]


def test_replayed_answers_stream_as_items() -> None:
    """A whole answer (the echo provider's, a plugin's) replayed as events."""
    answer = ChatResponse("msg_9", "echo", [Thinking("plan"), Text("calling"), ToolCall("call_1", "f", {"x": [1]}),
                                           Opaque("anthropic", {"type": "server_tool_use"})], "tool_use", usage=Usage(3, 4))
    encoder = ResponsesStreamEncoder(REQUEST, source="anthropic")
    body = encode(encoder, replay(answer, text_piece=3))
    assert validate(body) == []
    final = sdk_response(body)
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert sdk_texts_and_calls(final) == ("calling", [("call_1", "f", {"x": [1]})])
    assert "content.server_tool_use" in encoder.lossy


# --- the validator's Responses rules ------------------------------------------------------------


def _events(*payloads: dict[str, Any], numbered: bool = True) -> bytes:
    out = []
    for number, payload in enumerate(payloads):
        data = {**payload, "sequence_number": number} if numbered else payload
        out.append(f"event: {payload['type']}\ndata: {json.dumps(data)}\n\n")
    return "".join(out).encode()


CREATED = {"type": "response.created", "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}}
MESSAGE = {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
ADDED = {"type": "response.output_item.added", "output_index": 0, "item": MESSAGE}
PART = {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": []}}
DELTA = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hi"}
TEXT_DONE = {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "Hi"}
PART_DONE = {**PART, "type": "response.content_part.done", "part": {"type": "output_text", "text": "Hi", "annotations": []}}
ITEM_DONE = {"type": "response.output_item.done", "output_index": 0, "item": {**MESSAGE, "status": "completed", "content": [PART_DONE["part"]]}}
USAGE = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
COMPLETED = {"type": "response.completed", "response": {"id": "resp_1", "object": "response", "status": "completed",
                                                         "output": [ITEM_DONE["item"]], "usage": USAGE}}
GOOD = [CREATED, ADDED, PART, DELTA, TEXT_DONE, PART_DONE, ITEM_DONE, COMPLETED]


def test_the_validators_example_stream_is_good() -> None:
    assert validate(_events(*GOOD)) == []
    assert sdk_texts_and_calls(sdk_response(_events(*GOOD)))[0] == "Hi"


BROKEN = {
    "no sequence numbers": (_events(*GOOD, numbered=False), "event 1 (response.created): no integer sequence_number"),
    "a number skipped": (_events(*GOOD)[: -1].replace(b'"sequence_number": 7', b'"sequence_number": 8') + b"\n",
                         "event 8 (response.completed): sequence_number 8; expected 7"),
    "delta before its item": (_events(CREATED, DELTA, *GOOD[1:]), "event 2 (response.output_text.delta): for output 0, which is not open"),
    "delta before its part": (_events(CREATED, ADDED, DELTA, PART, *GOOD[4:]),
                              "event 3 (response.output_text.delta): for part 0 of output 0, which is not open"),
    "text done differs": (_events(*GOOD[:4], {**TEXT_DONE, "text": "Ho"}, *GOOD[5:]),
                          "event 5 (response.output_text.done): text differs from its deltas"),
    "second item while the first is open": (_events(CREATED, ADDED, {**ADDED, "output_index": 1}),
                                            "event 3 (response.output_item.added): output 1 added while output 0 is open"),
    "output index skipped": (_events(CREATED, {**ADDED, "output_index": 1}),
                             "event 2 (response.output_item.added): output_index 1; the next output is 0"),
    "completed with an item open": (_events(*GOOD[:6], COMPLETED),
                                    "event 7 (response.completed): response.completed while output 0 is open"),
    "nothing after the end": (_events(*GOOD, DELTA), "event 9 (response.output_text.delta): comes after the end of the stream"),
    "name and type differ": (_events(CREATED).replace(b"event: response.created", b"event: response.in_progress"),
                             "event 1 (response.in_progress): event name 'response.in_progress' differs from data type 'response.created'"),
    "no terminal event": (_events(*GOOD[:-1]), "no terminal event (response.completed, .incomplete, .failed or error)"),
    "item before created": (_events(ADDED), "event 1 (response.output_item.added): comes before response.created"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validator_names_the_problem(case: str) -> None:
    data, problem = BROKEN[case]
    assert problem in validate(data, "responses")


def test_validator_checks_function_call_arguments_and_detects_the_format() -> None:
    data = transcript("responses-sse", "function_calls.txt")
    assert validate(data) == []  # detected as a Responses stream
    broken = data.replace(b'"delta":"Japan\\"}"', b'"delta":"Japan"', 1).replace(b'"arguments":"{\\"location\\":\\"T\xc5\x8dky\xc5\x8d, Japan\\"}"', b'"arguments":"{\\"location\\":\\"T\xc5\x8dky\xc5\x8d, Japan"')
    assert any("arguments are not valid JSON" in p for p in validate(broken))


def test_validator_cli_reads_a_responses_transcript(tmp_path, capsys) -> None:
    from tornrouter.validate_stream import main

    good = tmp_path / "good.txt"
    good.write_bytes(transcript("responses-sse", "reasoning.txt"))
    assert main([str(good), "--format", "responses"]) == 0 and capsys.readouterr().out == "ok\n"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(transcript("responses-sse", "reasoning.txt").replace(b'"sequence_number":3,', b"", 1))
    assert main([str(bad)]) == 1
    assert "event 4 (response.reasoning_summary_part.added): no integer sequence_number" in capsys.readouterr().out
