"""An upstream's error body that is not its API's error: the one line the client
gets, and what the log keeps.  (Through a real router: ``test_faults.py``.)"""

from __future__ import annotations

import pytest

from tests.fake_upstream import nginx_error_page
from tornrouter.providers.error_body import LOGGED_BYTES, READ_LIMIT, describe, logged


@pytest.mark.parametrize(("content_type", "body", "described"), [
    ("text/html", nginx_error_page(), 'with a text/html page: "502 Bad Gateway"'),
    ("Text/HTML; charset=utf-8", b"<title>\n  503\tService  Unavailable </title>", 'with a text/html page: "503 Service Unavailable"'),
    # No title: the visible text, scripts and styles skipped, entities decoded.
    ("text/html", b"<html><head><style>h1{}</style></head><body><script>var a = '<b>';</script>"
                  b"<h1>Service Unavailable</h1><p>Try again &amp; again.</p></body></html>",
     'with a text/html page: "Service Unavailable Try again & again."'),
    ("text/html", b"<html><body></body></html>", "with a text/html page without text"),
    # Markup html.parser gives up on: what came before it.
    ("text/html", b"<p>Bad Gateway</p><![if-not-a-keyword[ x ]]>", 'with a text/html page: "Bad Gateway"'),
    ("text/plain", b"upstream connect error or disconnect/reset before headers\n",
     'with a text/plain body: "upstream connect error or disconnect/reset before headers"'),
    (None, b"no route to host", 'with a non-JSON body: "no route to host"'),
    (None, nginx_error_page(), 'with a non-JSON body: "502 Bad Gateway"'),  # markup stripped all the same
    # JSON, but not the API's error shape.
    ("application/json", b'{"detail": "Not Found"}', 'with an application/json body: {"detail": "Not Found"}'),
    (None, b'{"message":\n "Internal server error"}', 'with a JSON body: {"message": "Internal server error"}'),
    ("text/html", b" \r\n", "with an empty body"),
    (None, b"", "with an empty body"),
])
def test_describe(content_type: str | None, body: bytes, described: str) -> None:
    assert describe(content_type, body) == described


def test_a_long_text_is_capped() -> None:
    assert describe("text/plain", b"x" * 1000) == f'with a text/plain body: "{"x" * 200}…"'
    assert describe("text/html", b"<title>" + b"y" * 1000 + b"</title>") == f'with a text/html page: "{"y" * 200}…"'


@pytest.mark.parametrize("body", [
    b"\xff\xfe\x00<\x00h\x00t\x00m\x00l\x00>",  # UTF-16
    "<title>Passerelle défaillante</title>".encode("latin-1"),
    bytes(range(256)) * 4,
    b"<title>" + "é".encode() * READ_LIMIT,  # cut inside a character
    b"[" * 100_000,  # nested deeper than a parser's recursion
])
@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/json", None])
def test_any_bytes_are_described_without_raising(body: bytes, content_type: str | None) -> None:
    assert describe(content_type, body).startswith("with ")


def test_the_log_keeps_the_body_capped() -> None:
    page = nginx_error_page()
    assert logged(page) == page[:LOGGED_BYTES].decode() + "…"
    assert logged(b'{"error": "short"}') == '{"error": "short"}'
    assert logged(b"\xff" * 10) == "\ufffd" * 10
    assert logged(b"") is None
