"""Google access tokens for Vertex AI, from ``google-auth`` (the ``vertex`` extra):
Application Default Credentials, or a service-account key file
(``credentials_file``).  Imported only by a configured ``vertex`` provider.

``google-auth`` refreshes over ``requests``, which blocks, so a refresh runs in
the loop's default executor, one at a time; a token is refreshed when it is
within ``REFRESH_MARGIN_S`` of its expiry, so a request never goes out with one
about to lapse.  The token is a secret: it is never logged, and a failed
refresh is reported by the error's type and Google's own message.
"""

from __future__ import annotations

import asyncio
import datetime

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from ..errors import UpstreamError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN_S = 300.0


class GoogleToken:
    """The access token of one provider's credentials (``TokenSource``)."""

    def __init__(self, provider: str, credentials_file: str | None) -> None:
        self.provider = provider
        if credentials_file:
            self.credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=SCOPES)
        else:
            self.credentials, _ = google.auth.default(scopes=SCOPES)
        self.current: str | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        expiry = self.credentials.expiry  # naive UTC, as google-auth keeps it
        if self.current is None or expiry is None:
            return self.current is not None and expiry is None and self.credentials.token is not None
        left = (expiry - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).total_seconds()
        return left > REFRESH_MARGIN_S

    async def get(self) -> str:
        if self._fresh():
            return self.current  # type: ignore[return-value]
        async with self._lock:
            if not self._fresh():
                loop = asyncio.get_running_loop()
                try:
                    await loop.run_in_executor(None, self.credentials.refresh, google.auth.transport.requests.Request())
                except google.auth.exceptions.GoogleAuthError as exc:
                    raise UpstreamError(self.provider, f"could not get a Google access token: "
                                                       f"{type(exc).__name__}: {str(exc)[:300]}") from None
                self.current = self.credentials.token
        return self.current  # type: ignore[return-value]
