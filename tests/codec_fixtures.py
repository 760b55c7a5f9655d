"""The recorded bodies and streams the codec tests read.

``tests/fixtures/<format>/`` holds ``requests/*.json`` and ``responses/*.json``
(realistic bodies from the API reference, one file a case) and
``invalid_requests.json`` (a list of ``{"name", "body", ...}`` cases the codec
must refuse); ``tests/fixtures/<format>-sse/*.txt`` are recorded streams.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tornrouter.canonical import ChatRequest
from tornrouter.formats.base import Codec

FIXTURE_DIR = Path(__file__).parent / "fixtures"


class CodecFixtures:
    """The fixture bodies of one format, and the codec that reads that format."""

    def __init__(self, fmt: str, codec: Codec) -> None:
        self.dir = FIXTURE_DIR / fmt
        self.codec = codec
        self.requests = sorted(p.stem for p in (self.dir / "requests").glob("*.json"))
        self.responses = sorted(p.stem for p in (self.dir / "responses").glob("*.json"))
        self.invalid: list[dict[str, Any]] = json.loads((self.dir / "invalid_requests.json").read_text())

    def load(self, kind: str, name: str) -> dict[str, Any]:
        """The body ``<kind>/<name>.json`` (``kind``: ``requests`` or ``responses``)."""
        return json.loads((self.dir / kind / f"{name}.json").read_text())

    def parse(self, body: dict[str, Any]) -> ChatRequest:
        """``body`` as a client would send it, parsed by the codec."""
        return self.codec.parse_request(json.dumps(body).encode())


def terminated(data: bytes) -> bytes:
    """``data`` ending with the blank line that ends its last event (the
    recorded Anthropic transcripts lack it)."""
    return data if data.endswith(b"\n\n") else data.rstrip(b"\n") + b"\n\n"


def transcript(kind: str, name: str) -> bytes:
    """The recorded stream ``fixtures/<kind>/<name>`` (``kind``: ``openai-sse``
    or ``anthropic-sse``), terminated."""
    return terminated((FIXTURE_DIR / kind / name).read_bytes())
