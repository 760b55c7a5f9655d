"""What an upstream's error body becomes when it is not its API's error.

Between the router and an upstream there is often a proxy or a gateway (nginx,
a cloud load balancer) that answers a failure with its own page.  Quoting that
page in a JSON error's ``message`` gives the client markup, and possibly tens
of kB of it.  The client gets one line instead -- the status, the content type
and the page's title or first text (``upstream returned 502 with a text/html
page: "502 Bad Gateway"``) -- and the request log keeps the body itself,
capped (``logged``).

Both read untrusted bytes: they never raise, whatever the encoding or markup.
"""

from __future__ import annotations

from html.parser import HTMLParser

import orjson

from ..formats.base import short

READ_LIMIT = 64 * 1024  # of an error body, only this much is read (streams) or parsed
SUMMARY_CHARS = 200  # of a page's title or text, in the client's message
LOGGED_BYTES = 4096  # of the body, in the log entry


def describe(content_type: str | None, body: bytes) -> str:
    """``body`` as the rest of ``upstream returned 502 ...``: ``with a text/html
    page: "502 Bad Gateway"``, ``with an application/json body: {"detail": ...}``,
    ``with a non-JSON body: "..."`` (no Content-Type), ``with an empty body``."""
    media_type = short((content_type or "").split(";", 1)[0].lower(), 100)
    head = body[:READ_LIMIT]
    text = head.decode("utf-8", "replace")
    if not text.strip():
        return "with an empty body"
    try:
        orjson.loads(head)
    except ValueError:  # bad JSON, bad UTF-8, or nested too deep to bother
        pass
    else:  # JSON of another shape ({"detail": ...}): quoted as it is
        return f"with {_a(media_type or 'JSON')} body: {short(text, SUMMARY_CHARS)}"
    if "html" in media_type or (not media_type and text.lstrip().startswith("<")):
        text = _PageText.of(text)
    what = f'{_a(media_type or "non-JSON")} {"page" if "html" in media_type else "body"}'
    text = short(text, SUMMARY_CHARS)
    return f'with {what}: "{text}"' if text else f"with {what} without text"


def logged(body: bytes) -> str | None:
    """``body`` for the log entry: decoded, cut at ``LOGGED_BYTES`` (marked
    with an ellipsis), None when empty."""
    if not body:
        return None
    text = body[:LOGGED_BYTES].decode("utf-8", "replace")
    return text + "…" if len(body) > LOGGED_BYTES else text


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


class _PageText(HTMLParser):
    """A page's ``<title>``, else its visible text (scripts and styles skipped)."""

    INVISIBLE = frozenset({"script", "style", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__()  # convert_charrefs: "&amp;" arrives as "&"
        self.title: list[str] = []
        self.text: list[str] = []
        self._open: str | None = None  # the title or invisible element being read

    @classmethod
    def of(cls, page: str) -> str:
        parser = cls()
        try:
            parser.feed(page)
            parser.close()
        except AssertionError:  # html.parser's answer to some malformed markup ("<![foo[")
            pass  # what was read before it is still the page's text
        return " ".join(parser.title).strip() or " ".join(parser.text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" or tag in self.INVISIBLE:
            self._open = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "title":
            self.title.append(data)
        elif self._open is None:
            self.text.append(data)
