"""SSEDecoder against recorded streams cut at every byte, and the spec's corner cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.codec_fixtures import FIXTURE_DIR, terminated
from tornrouter.sse import ServerSentEvent, SSEDecoder, encode_event

TRANSCRIPTS = sorted(FIXTURE_DIR.glob("*-sse/*.txt"))


def decode(*chunks: bytes) -> tuple[list[ServerSentEvent], bool]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events, decoder.close()


def expected_events(data: bytes) -> list[tuple[str | None, str]]:
    """(event, data) pairs read naively from a transcript that has one data line per event."""
    out = []
    for block in data.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line)
        if "data" in fields:
            out.append((fields.get("event"), fields["data"]))
    return out


def variants(data: bytes) -> dict[str, bytes]:
    return {"lf": data, "crlf": data.replace(b"\n", b"\r\n"), "cr": data.replace(b"\n", b"\r")}


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_transcript_decodes_the_same_at_every_split(path: Path) -> None:
    data = terminated(path.read_bytes())
    expected = expected_events(data)
    assert expected
    for name, variant in variants(data).items():
        whole, cut = decode(variant)
        assert [(e.event, e.data) for e in whole] == expected, name
        assert not cut
        for offset in range(len(variant) + 1):
            assert decode(variant[:offset], variant[offset:]) == (whole, False), (name, offset)
        assert decode(*(variant[i : i + 1] for i in range(len(variant)))) == (whole, False), name


@pytest.mark.parametrize("path", sorted(FIXTURE_DIR.glob("anthropic-sse/*.txt")), ids=lambda p: p.name)
def test_event_without_its_blank_line_is_dropped_and_reported(path: Path) -> None:
    raw = path.read_bytes()
    assert not raw.endswith(b"\n\n")  # as recorded: the last event is unfinished
    events, cut = decode(raw)
    assert cut
    assert [(e.event, e.data) for e in events] == expected_events(terminated(raw))[:-1]


def test_mid_event_tracks_unfinished_lines_and_fields() -> None:
    decoder = SSEDecoder()
    assert not decoder.mid_event
    decoder.feed(b"data: x")
    assert decoder.mid_event
    decoder.feed(b"\n")
    assert decoder.mid_event
    assert decoder.feed(b"\n") == [ServerSentEvent("x")]
    assert not decoder.mid_event
    decoder.feed(b": keep-alive\n")
    assert not decoder.close()


def test_crlf_split_between_chunks_is_one_line_break() -> None:
    events, _ = decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert events == [ServerSentEvent("a\nb")]


@pytest.mark.parametrize(
    "stream, expected",
    [
        (b"data:no-space\n\n", [ServerSentEvent("no-space")]),
        (b"data:  two spaces\n\n", [ServerSentEvent(" two spaces")]),
        (b"data: line 1\ndata: line 2\ndata:\n\n", [ServerSentEvent("line 1\nline 2\n")]),
        (b": a comment\ndata: x\n: another\n\n", [ServerSentEvent("x")]),
        (b"event: only-a-name\n\n", []),  # no data line: nothing to dispatch
        (b"data\n\n", [ServerSentEvent("")]),  # a field name alone has an empty value
        (b"event: e\ndata: 1\nid: 7\nretry: 1500\n\n", [ServerSentEvent("1", "e", "7", 1500)]),
        (b"id: 7\ndata: 1\n\ndata: 2\n\n", [ServerSentEvent("1", id="7"), ServerSentEvent("2", id="7")]),
        (b"retry: soon\nid: a\0b\ndata: 1\n\n", [ServerSentEvent("1")]),  # both ignored, per spec
        (b"unknown: field\ndata: 1\n\n", [ServerSentEvent("1")]),
        (b"\xef\xbb\xbfdata: bom\n\n", [ServerSentEvent("bom")]),
        (b"\n\n\ndata: 1\n\n\n\n", [ServerSentEvent("1")]),
    ],
)
def test_field_parsing(stream: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode(stream)[0] == expected
    assert decode(*(stream[i : i + 1] for i in range(len(stream))))[0] == expected


def test_multibyte_utf8_survives_any_split() -> None:
    text = "é — 世界 👋 ok"
    stream = b"event: t\ndata: " + text.encode() + b"\n\n"
    for offset in range(len(stream) + 1):
        events, _ = decode(stream[:offset], stream[offset:])
        assert events == [ServerSentEvent(text, "t")], offset


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\n\n")[0] == [ServerSentEvent("\ufffd")]


@pytest.mark.parametrize("data", ['{"a": 1}', "line 1\nline 2", "a\r\nb\rc", "", "trailing\n"])
@pytest.mark.parametrize("event", [None, "message_start"])
def test_encode_event_round_trips(data: str, event: str | None) -> None:
    encoded = encode_event(data, event)
    assert decode(encoded)[0] == [ServerSentEvent(data.replace("\r\n", "\n").replace("\r", "\n"), event)]


def test_encode_event_exact_bytes() -> None:
    assert encode_event('{"type":"ping"}', "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"
    with pytest.raises(ValueError):
        encode_event("x", "bad\nname")


@pytest.mark.parametrize("chunk", [
    b"data: {\"a\":1}\n\n",
    b"event: ping\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    b"data: one\ndata: two\n\n",  # several data lines
    b": keep-alive\n\ndata: x\n\n",  # a comment
    b"id: 7\ndata: x\n\ndata: y\n\n",  # an id carried over
    b"data:x\n\n",  # no space after the colon
    b"event: \ndata: x\n\n",  # an empty event name
    b"retry: 10\ndata: x\n\n",
    b"data: x\r\n\r\n",
    b"data: caf\xc3\xa9\n\n\n\n",  # an empty block
    b"event: only-a-name\n\n",  # no data: no event
])
def test_whole_events_read_as_the_general_path_reads_them(chunk: bytes) -> None:
    """A chunk of whole events takes a shorter way through the decoder; every
    shape must come out as it does byte by byte (which never takes it)."""
    start = b"data: first\n\n"
    assert decode(start, chunk) == decode(*(bytes([b]) for b in start + chunk))
