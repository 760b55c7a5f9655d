"""The fault suite (``test_faults.py``) replayed on an Azure OpenAI primary
(``tests/fake_azure.py``, which speaks OpenAI's wire format behind Azure's
paths and auth), with a fallback of the other API and without, whole and
streamed, before and after the commit point."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.answers import answer_text, is_error_event, last_event, native_error, served_by, streamed_text
from tests.configs import dead_url, provider
from tests.fake_azure import AZURE_KEY, FakeAzure
from tests.fake_upstream import Reply
from tests.test_faults import NONSTREAM_FAULTS, STREAM_FAULTS_BEFORE, nonstream_fault, stream_fault_before
from tests.upstream_faults import TEXT, attempts, logged_entry, request_body, send, stream_fault_after
from tests.wire import ANTHROPIC, OPENAI
from tornrouter.validate_stream import validate

SKIPPED = {"far_too_large"}  # a limit of the shared transport, the same for every kind (test_faults.py)


@pytest.fixture
def azure(io_loop):
    fake = FakeAzure().start()
    yield fake
    io_loop.run_sync(fake.stop)


def start(start_router, fakes, tmp_path, azure: FakeAzure, reply: Reply | None, options: dict[str, Any],
          with_fallback: bool):
    if reply is not None:
        azure.then(reply)
    url = azure.url if reply is not None else dead_url()
    providers: dict[str, Any] = {"primary": {"kind": "azure", "base_url": url, "api_key": AZURE_KEY,
                                             "deployments": {"model-a": "prod-gpt4o"}, **options}}
    to = ["primary/model-a"]
    if with_fallback:
        providers["backup"] = provider("anthropic", fakes().url)
        to.append("backup/model-b")
    return start_router({"server": {"dashboard": False}, "log": {"requests": str(tmp_path / "requests.jsonl")},
                         "providers": providers, "router": {"default": {"to": to}}})


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", [f for f in NONSTREAM_FAULTS if f not in SKIPPED])
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_nonstreamed_fault(start_router, fakes, tmp_path, azure, path, fault, with_fallback):
    reply, status, options = nonstream_fault(fault, "openai", relayed=False)  # Azure's errors are its own
    router = start(start_router, fakes, tmp_path, azure, reply, options, with_fallback)

    response = await router.post(path, request_body(path))

    entry = await logged_entry(router, response)
    if with_fallback:
        assert response.code == 200, response.body
        assert answer_text(path, response) == TEXT["anthropic"]
        served_by(response, "backup", "model-b")
    else:
        assert response.code == status, response.body
        assert "primary" in native_error(path, response)
        assert entry["status"] == status
        if fault.endswith("retry_after"):
            assert response.headers["Retry-After"] == "7"
    assert "SECRET" not in response.body.decode() and "SECRET" not in json.dumps(entry)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", [f for f in STREAM_FAULTS_BEFORE if f not in SKIPPED])
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_stream_fault_before_content(start_router, fakes, tmp_path, azure, path, fault, with_fallback):
    reply, status, options = stream_fault_before(fault, "openai", relayed=False)
    router = start(start_router, fakes, tmp_path, azure, reply, options, with_fallback)

    response, raw = await send(router, path, request_body(path, stream=True))

    if with_fallback:
        assert response.code == 200, raw
        assert validate(raw, "openai" if path == OPENAI else "anthropic") == []
        assert streamed_text(path, raw).startswith(TEXT["anthropic"])
        served_by(response, "backup", "model-b")
    else:
        assert response.code == status, raw
        response._body = raw
        assert "primary" in native_error(path, response)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", ["error_event", "dropped", "reset", "stalled", "malformed_event", "ends_without_terminal_event"])
async def test_stream_fault_after_content(start_router, fakes, tmp_path, azure, path, fault):
    reply, status, options = stream_fault_after(fault, "openai")
    router = start(start_router, fakes, tmp_path, azure, reply, options, True)

    response, raw = await send(router, path, request_body(path, stream=True))

    assert response.code == 200
    assert validate(raw, "openai" if path == OPENAI else "anthropic") == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", 200)] and entry["status"] == status
