"""Bearer tokens an operator's tooling makes: from a command (``az account
get-access-token ...``), run off the event loop's path and cached, or from an
environment variable, read at each request.  A token is a secret: it is never
logged, and a failing command is reported by its exit status alone (its output
may hold a token).
"""

from __future__ import annotations

import asyncio
import os
import time

import orjson

from ..errors import UpstreamError

COMMAND_TIMEOUT_S = 30.0
EXPIRY_MARGIN_S = 120.0  # a token is renewed this long before it expires


class BearerToken:
    """The token of one provider.  ``command`` prints a token, or the JSON of
    ``az account get-access-token`` (``accessToken`` and ``expires_on``, Unix
    seconds); it is cached ``ttl_s``, or until shortly before that expiry if
    sooner.  ``env`` names a variable holding the token instead."""

    def __init__(self, provider: str, *, command: str | None, env: str | None, ttl_s: float) -> None:
        self.provider = provider
        self.command = command
        self.env = env
        self.ttl_s = ttl_s
        self.current: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env, "").strip()
            if not value:
                raise UpstreamError(self.provider, f"no token: the environment variable {self.env} is not set")
            self.current = value
            return value
        if self.current is not None and time.time() < self._expires:
            return self.current
        async with self._lock:  # one command at a time; the others take its token
            if self.current is None or time.time() >= self._expires:
                self.current, self._expires = await self._run()
        return self.current

    async def _run(self) -> tuple[str, float]:
        assert self.command is not None
        process = await asyncio.create_subprocess_shell(
            self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise UpstreamError(self.provider, f"token_command did not finish in {COMMAND_TIMEOUT_S:g} s") from None
        if process.returncode != 0:
            raise UpstreamError(self.provider, f"token_command failed with exit status {process.returncode}")
        text = out.decode("utf-8", "replace").strip()
        expires = time.time() + self.ttl_s
        if text.startswith("{"):
            try:
                data = orjson.loads(text)
                token = data.get("accessToken") or data.get("access_token")
                stamp = data.get("expires_on")
            except (ValueError, AttributeError):
                token = stamp = None
            if not isinstance(token, str) or not token:
                raise UpstreamError(self.provider, "token_command printed JSON without an accessToken")
            if isinstance(stamp, (int, float, str)) and str(stamp).isdigit():
                expires = min(expires, float(stamp) - EXPIRY_MARGIN_S)
            text = token
        if not text:
            raise UpstreamError(self.provider, "token_command printed no token")
        return text, expires
