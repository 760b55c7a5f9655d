"""The baseline the router is measured against: the least a Tornado relay does.

One ``RequestHandler`` on ``CurlAsyncHTTPClient`` (the router's stack) that
parses the client's JSON body, serializes it again (any relay that may rewrite
the model must), forwards it to the same path on the upstream with the
provider's auth headers and relays the answer: status, content type and body,
or the SSE bytes as they arrive when the body asks for ``"stream": true``.  No
validation, no translation, no pipeline, no request log.  Whatever the router
spends beyond this is the price of being a router.

    python scripts/relay_baseline.py --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import tornado.web
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer


class RelayHandler(tornado.web.RequestHandler):
    def initialize(self, http: CurlAsyncHTTPClient, url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.url = url
        self.upstream_headers = headers

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise tornado.web.HTTPError(400, reason="body is not JSON") from None
        stream = isinstance(body, dict) and body.get("stream") is True
        request = HTTPRequest(
            self.url,
            method="POST",
            headers=self.upstream_headers,
            body=json.dumps(body, separators=(",", ":")).encode(),
            request_timeout=600,
            streaming_callback=self.relay_chunk if stream else None,
        )
        if stream:
            # Small SSE writes must not wait on Nagle + the client's delayed ACK.
            self.request.connection.stream.set_nodelay(True)
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
        response = await self.http.fetch(request, raise_error=False)
        if stream:
            self.finish()
            return
        self.set_status(502 if response.code == 599 else response.code)
        self.set_header("Content-Type", response.headers.get("Content-Type", "application/json"))
        self.finish(response.body or b"")

    def relay_chunk(self, chunk: bytes) -> None:
        # Synchronous (curl's streaming_callback); the flush future is not
        # awaited, so a closed client must not leave an unretrieved exception.
        if self.request.connection.stream.closed():
            return
        self.write(chunk)
        self.flush().add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A client that hung up mid-stream is not this relay's problem to report.
    if not future.cancelled():
        future.exception()


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish("ok")


def make_app(upstream: str, max_clients: int) -> tuple[tornado.web.Application, CurlAsyncHTTPClient]:
    upstream = upstream.rstrip("/")
    http = CurlAsyncHTTPClient(force_instance=True, max_clients=max_clients)
    json_type = {"Content-Type": "application/json"}
    openai = {**json_type, "Authorization": "Bearer x"}
    anthropic = {**json_type, "x-api-key": "x", "anthropic-version": "2023-06-01"}
    relays = [(path, RelayHandler, {"http": http, "url": upstream + path, "headers": headers})
              for path, headers in (("/v1/chat/completions", openai), ("/v1/responses", openai), ("/v1/messages", anthropic))]
    return tornado.web.Application([*relays, (r"/health", HealthHandler)]), http


async def serve(host: str, port: int, upstream: str, max_clients: int) -> None:
    app, http = make_app(upstream, max_clients)
    server = HTTPServer(app)
    server.listen(port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    http.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Minimal Tornado + curl JSON relay (the benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:9001")
    parser.add_argument("--max-clients", type=int, default=200, help="concurrent upstream transfers")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.upstream, args.max_clients))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
