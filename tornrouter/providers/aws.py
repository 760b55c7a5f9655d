"""AWS for Bedrock, through ``botocore`` (the ``bedrock`` extra), imported only
by a configured ``bedrock`` provider: credentials from the standard chain
(environment, shared config and credentials files, a ``profile``, container
and instance roles) or a role assumed through STS (``role_arn``), refreshed by
botocore before they expire; SigV4 signing by botocore's signer; and the
``application/vnd.amazon.eventstream`` framing read by botocore's parser.

botocore's credential refreshes are blocking HTTP calls, so they run in the
loop's default executor, one at a time.  Keys never reach a log or an error.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.eventstream import EventStreamBuffer, ParserError
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import UpstreamError
from ..sse import ServerSentEvent

SERVICE = "bedrock"
SESSION_NAME = "tornrouter"

# Bedrock's stream exceptions, as the Anthropic error types the stream decoder maps to statuses.
EXCEPTION_TYPES = {
    "throttlingException": "rate_limit_error",
    "validationException": "invalid_request_error",
    "serviceUnavailableException": "overloaded_error",
    "modelTimeoutException": "timeout_error",
}


class AWSSigner:
    """One provider's credentials and the SigV4 signer of its region."""

    def __init__(self, provider: str, region: str, profile: str | None, role_arn: str | None) -> None:
        self.provider = provider
        self.region = region
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        if role_arn is not None:
            fetcher = AssumeRoleCredentialFetcher(
                session.create_client, credentials, role_arn, extra_args={"RoleSessionName": SESSION_NAME}
            )
            credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
        self.credentials = credentials
        self.frozen: Any = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Credentials valid for a while yet (``UpstreamError`` when there are none)."""
        if self.credentials is None:
            raise UpstreamError(self.provider, "no AWS credentials found (environment, shared files, profile or role)")
        refresh_needed = getattr(self.credentials, "refresh_needed", None)
        if self.frozen is not None and (refresh_needed is None or not refresh_needed()):
            return
        async with self._lock:
            try:
                loop = asyncio.get_running_loop()
                self.frozen = await loop.run_in_executor(None, self.credentials.get_frozen_credentials)
            except (BotoCoreError, ClientError) as exc:
                raise UpstreamError(self.provider, f"could not get AWS credentials: {type(exc).__name__}: "
                                                   f"{str(exc)[:300]}") from None

    def sign(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` and the SigV4 headers of a POST of ``body`` to ``url``."""
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(self.frozen, SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())

    def secrets(self) -> list[str]:
        """What must never be quoted: the keys and the session token."""
        frozen = self.frozen
        return [s for s in (frozen.secret_key, frozen.token, frozen.access_key) if s] if frozen is not None else []


class EventStreamFraming:
    """``application/vnd.amazon.eventstream`` frames -> ``ServerSentEvent``s:
    InvokeModel's ``chunk`` frames as the Anthropic events they carry (so a
    Messages client is relayed them as SSE), ConverseStream's as their JSON
    named by the event type.  An exception frame is an Anthropic ``error``
    event; a frame that cannot be read is a ``ValueError``."""

    def __init__(self) -> None:
        self.buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        self.buffer.add_data(chunk)
        try:
            for message in self.buffer:
                yield self._event(message.headers, message.payload)
        except ParserError as exc:
            raise ValueError(f"malformed event-stream frame: {exc}") from exc

    @staticmethod
    def _event(headers: dict[str, Any], payload: bytes) -> ServerSentEvent:
        import orjson

        kind = headers.get(":message-type")
        data = orjson.loads(payload) if payload else {}
        if kind == "event" and headers.get(":event-type") == "chunk":  # InvokeModel: an Anthropic event in base64
            text = base64.b64decode(data["bytes"]).decode("utf-8")
            event = orjson.loads(text)
            return ServerSentEvent(text, event.get("type") if isinstance(event, dict) else None)
        if kind == "event":  # ConverseStream: the event's own JSON, named by its type
            return ServerSentEvent(payload.decode("utf-8"), headers.get(":event-type"))
        name = headers.get(":exception-type") or headers.get(":error-code") or "bedrockException"
        message = data.get("message") or data.get("Message") or headers.get(":error-message") or name
        error = {"type": "error", "error": {"type": EXCEPTION_TYPES.get(name, "api_error"), "message": f"{name}: {message}"}}
        return ServerSentEvent(orjson.dumps(error).decode(), "error")
