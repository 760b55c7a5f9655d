"""``MirrorClient``: the mirrors' own upstream client, whose transfers can be stopped.

The mirrors do not share the router's client: a slow mirror target would
otherwise hold some of its ``server.max_clients`` transfers, and the clients'
own requests would queue behind shadow traffic.  This one has a transfer for
every mirror a route may run at once, so nothing queues in it either.

And its transfers stop when the runtime closes.  Tornado cannot cancel a
fetch in flight (tornado issues 157, 3289): cancelling the task that awaits
one leaves the transfer running, and its end is then logged as an "exception
after Future was cancelled".  So, as ``providers/streaming.py`` does for
streams, each transfer gets libcurl's progress callback, which aborts it once
``stop`` is called, and a pause and unpause of each handle makes libcurl call
it at once, even on a silent upstream.  The aborted fetches end (599) like any
failed transfer, and their tasks with them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.httpclient import HTTPRequest, HTTPResponse


class MirrorClient:
    """Stands for the ``AsyncHTTPClient`` of the mirrors' providers: ``fetch``, ``stop``, ``close``."""

    def __init__(self, max_clients: int, max_body_size: int) -> None:
        self.http = CurlAsyncHTTPClient(force_instance=True, max_clients=max_clients, max_body_size=max_body_size)
        self.stopping = False
        self._handles: set[pycurl.Curl] = set()  # pooled: at most max_clients of them

    def fetch(self, request: HTTPRequest, **kwargs: Any) -> asyncio.Future[HTTPResponse]:
        request.prepare_curl_callback = self._prepare_curl
        return self.http.fetch(request, **kwargs)

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, self._on_progress)
        self._handles.add(curl)

    def _on_progress(self, *_: int) -> int:
        return 1 if self.stopping else 0  # non-zero aborts the transfer

    def stop(self) -> None:
        """Abort every transfer, running or to come, on the loop's next turns."""
        self.stopping = True
        for curl in self._handles:
            try:
                curl.pause(pycurl.PAUSE_ALL)
                curl.pause(pycurl.PAUSE_CONT)
            except pycurl.error:  # not in a transfer
                pass

    def close(self) -> None:
        """Once its transfers have ended (``stop``, then their fetches done)."""
        self.http.close()
