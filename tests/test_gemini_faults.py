"""The fault suite (``test_faults.py``) for ``kind: gemini``: a Gemini primary
that misbehaves, with and without a fallback of another kind, whole and
streamed, before and after the commit point.  The client gets the fallback's
answer or a native error with the right status, and the log has the request
once with its attempts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.answers import answer_text, is_error_event, last_event, native_error, served_by, streamed_text
from tests.configs import dead_url, provider
from tests.fake_gemini import GEMINI_KEY, FakeGemini, gemini_error, gemini_response, gemini_sse
from tests.fake_upstream import Reply
from tests.upstream_faults import SHORT, TEXT, attempts, logged_entry, request_body, send
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES
from tornrouter.validate_stream import validate

HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
WORDS = "one two three four five six seven eight"


@pytest.fixture
def gemini(io_loop):
    fake = FakeGemini().start()
    yield fake
    io_loop.run_sync(fake.stop)


def start(start_router, fakes, tmp_path, gemini: FakeGemini, path: str, reply: Reply | None,
          options: dict[str, Any], with_fallback: bool):
    """``primary/model-a`` is Gemini playing ``reply`` (None: nothing listens);
    ``backup/model-b`` (``with_fallback``) an upstream of the client's API."""
    if reply is not None:
        gemini.then(reply)
    url = gemini.base_url if reply is not None else dead_url() + "/v1beta"
    providers: dict[str, Any] = {"primary": {"kind": "gemini", "base_url": url, "api_key": GEMINI_KEY, **options}}
    to = ["primary/model-a"]
    if with_fallback:
        backup = fakes()
        kind = "openai" if KIND[path] == "openai" else "anthropic"
        providers["backup"] = provider(kind, backup.url)
        to.append("backup/model-b")
    return start_router({
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": providers,
        "router": {"default": {"to": to}},
    })


def backup_text(path: str) -> str:
    return TEXT["openai" if KIND[path] == "openai" else "anthropic"]


NONSTREAM = {
    "refused": (None, 502, {}),
    "reset_before_answer": (Reply(drop=True, reset=True), 502, {}),
    "cut_mid_body": (Reply(body=gemini_response(WORDS), cut_after=40), 502, {}),
    "500": (Reply(status=500, body=gemini_error(500, "An internal error has occurred.", "INTERNAL")), 502, {}),
    "503_retry_after": (Reply(status=503, body=gemini_error(503, "The model is overloaded.", "UNAVAILABLE"),
                              headers={"Retry-After": "7"}), 502, {}),
    "429": (Reply(status=429, body=gemini_error(429, "Resource has been exhausted.", "RESOURCE_EXHAUSTED")), 429, {}),
    "slow_first_byte": (Reply(delay=60), 504, {"timeout_s": SHORT}),
    "malformed_json": (Reply(body=b'{"candidates": [{"content": {"par'), 502, {}),
    "html_error_page": (Reply(status=502, body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
    "not_a_response": (Reply(body={"unexpected": True}), 502, {}),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES])
@pytest.mark.parametrize("fault", sorted(NONSTREAM))
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_nonstreamed_fault(start_router, fakes, tmp_path, gemini, path, fault, with_fallback):
    reply, status, options = NONSTREAM[fault]
    router = start(start_router, fakes, tmp_path, gemini, path, reply, options, with_fallback)

    response = await router.post(path, request_body(path))

    entry = await logged_entry(router, response)
    if with_fallback:
        assert response.code == 200, response.body
        assert answer_text(path, response) == backup_text(path)
        served_by(response, "backup", "model-b")
        assert attempts(entry)[1:] == [("backup", 200)] and attempts(entry)[0][0] == "primary"
    else:
        assert response.code == status, response.body
        message = native_error(path, response)
        assert "primary" in message and "<" not in message
        served_by(response, "primary", "model-a")
        assert entry["status"] == status and entry["error"]
    assert "SECRET" not in response.body.decode() and "SECRET" not in json.dumps(entry)


def scripted() -> list[bytes]:
    return gemini_sse(WORDS, model="model-a")


BEFORE = {
    "refused": (None, 502, {}),
    "error_event_first": (Reply(sse=[b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n\n']), 502, {}),
    "429": (Reply(status=429, body=gemini_error(429, "Resource has been exhausted.", "RESOURCE_EXHAUSTED")), 429, {}),
    "drop_before_content": (Reply(sse=[], drop=True), 502, {}),
    "slow_first_byte": (Reply(sse=scripted(), stall_after=0), 504, {"first_byte_timeout_s": SHORT}),
    "malformed_first_event": (Reply(sse=[b'data: {"candidates": [{"con\n\n']), 502, {}),
    "ends_without_content": (Reply(sse=[]), 502, {}),
    "html_instead_of_sse": (Reply(body=HTML, headers={"Content-Type": "text/html"}), 502, {}),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES])
@pytest.mark.parametrize("fault", sorted(BEFORE))
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_stream_fault_before_content(start_router, fakes, tmp_path, gemini, path, fault, with_fallback):
    reply, status, options = BEFORE[fault]
    router = start(start_router, fakes, tmp_path, gemini, path, reply, options, with_fallback)

    response, raw = await send(router, path, request_body(path, stream=True))

    entry = await logged_entry(router, response)
    if with_fallback:
        assert response.code == 200, raw
        assert validate(raw, KIND[path]) == []
        assert not is_error_event(path, last_event(raw))
        assert streamed_text(path, raw).startswith(backup_text(path))
        served_by(response, "backup", "model-b")
    else:
        assert response.code == status, raw
        response._body = raw
        assert "primary" in native_error(path, response)
        assert entry["status"] == status and entry["error"]


AFTER = {
    "error_event": (Reply(sse=[*scripted()[:3], b'data: {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}\n\n']), 500, {}),
    "dropped": (Reply(sse=scripted()[:3], drop=True), 502, {}),
    "reset": (Reply(sse=scripted()[:3], drop=True, reset=True), 502, {}),
    "stalled": (Reply(sse=scripted(), stall_after=3), 504, {"idle_timeout_s": SHORT}),
    "malformed_event": (Reply(sse=[*scripted()[:3], b'data: {"candidates": [{"con\n\n']), 502, {}),
    "ends_without_finish": (Reply(sse=scripted()[:3]), 502, {}),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC, RESPONSES])
@pytest.mark.parametrize("fault", sorted(AFTER))
async def test_stream_fault_after_content(start_router, fakes, tmp_path, gemini, path, fault):
    """Past the commit point: the stream ends with the client API's error event;
    the fallback is not tried."""
    reply, status, options = AFTER[fault]
    router = start(start_router, fakes, tmp_path, gemini, path, reply, options, True)

    response, raw = await send(router, path, request_body(path, stream=True))

    assert response.code == 200
    assert validate(raw, KIND[path]) == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    served_by(response, "primary", "model-a")
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", 200)]
    assert entry["status"] == status and entry["error"]
