"""The recorded bodies the codec tests read, one set per API format.

``tests/fixtures/<format>/`` holds ``requests/*.json`` and ``responses/*.json``
(realistic bodies from the API reference, one file a case) and
``invalid_requests.json`` (a list of ``{"name", "body", ...}`` cases the codec
must refuse).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tornrouter.canonical import ChatRequest
from tornrouter.formats.base import Codec

ROOT = Path(__file__).parent / "fixtures"


class CodecFixtures:
    """The fixture bodies of one format, and the codec that reads that format."""

    def __init__(self, fmt: str, codec: Codec) -> None:
        self.dir = ROOT / fmt
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
