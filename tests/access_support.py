"""What the access, metrics and Redis tests share: client keys, the errors
they are refused with, and a raw HTTP client that can send headers without a
body or hang up."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.wire import OPENAI

ADMIN_KEY = "tr-admin-SECRET-5e1f"
TEAM_A = "tr-team-a-SECRET-0a1b"
TEAM_B = "tr-team-b-SECRET-2c3d"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(path: str, raw: bytes) -> dict[str, Any]:
    """The error object of either API's native error body (checked to be that shape)."""
    data = json.loads(raw)
    if path == OPENAI:
        assert set(data) == {"error"} and {"message", "type", "param", "code"} <= set(data["error"])
        return data["error"]
    assert data["type"] == "error" and {"type", "message"} <= set(data["error"])
    return data["error"]


class RawRequest:
    """One HTTP/1.1 request on its own socket: headers first, the body only if
    asked, and a hang-up at any point (what ``AsyncHTTPClient`` cannot do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str], content_length: int) -> RawRequest:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", f"Content-Length: {content_length}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    @classmethod
    async def post(cls, port: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> RawRequest:
        data = json.dumps(body).encode()
        request = await cls.open(port, path, headers, len(data))
        request.writer.write(data)
        await request.writer.drain()
        return request

    async def status(self) -> int:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        return int(line.split()[1])

    async def hang_up(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
