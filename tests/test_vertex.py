"""``kind: vertex`` end to end: Claude (``publisher: anthropic``) and Gemini
(``publisher: google``) on a fake Vertex AI whose model endpoints take only the
access tokens its OAuth endpoint issued to a service account it verified
(``tests/fake_vertex.py``): every client API, whole and streamed, tokens
refreshed before they expire and never shown, the extra named when missing."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.answers import native_error
from tests.fake_gemini import gemini_part_call, gemini_response
from tests.fake_upstream import ANTHROPIC_TEXT, Reply
from tests.fake_vertex import PROJECT, REGION, FakeVertex, service_account
from tests.test_gemini import follow_up, seen, streaming, tools_for
from tests.upstream_faults import logged_entry, send
from tests.wire import ANTHROPIC, OPENAI, RESPONSES, body_for
from tornrouter.canonical import ToolCall
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError

PATHS = [OPENAI, ANTHROPIC, RESPONSES]
MODELS = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers"


@pytest.fixture
def vertex(io_loop):
    fake = FakeVertex().start()
    yield fake
    io_loop.run_sync(fake.stop)


def config(tmp_path, fake: FakeVertex, publisher: str = "anthropic", model: str = "claude-sonnet-4-5@20250929",
           **options: Any) -> dict[str, Any]:
    provider = {"kind": "vertex", "base_url": fake.url, "project": PROJECT, "region": REGION, "publisher": publisher}
    if "credentials_file" not in options:
        provider["credentials_file"] = fake.service_account_file(tmp_path / "sa.json")
    return {
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {"vx": {**provider, **options}},
        "router": {"default": f"vx/{model}"},
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_claude_on_vertex_reaches_every_client(start_router, vertex, tmp_path, path, stream):
    router = start_router(config(tmp_path, vertex))
    body = body_for(path, "any-model", "hi there", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    assert seen(path, body, raw)[0].text().startswith(ANTHROPIC_TEXT)
    method = "streamRawPredict" if stream else "rawPredict"
    assert vertex.last.path == f"{MODELS}/anthropic/models/claude-sonnet-4-5@20250929:{method}"
    assert vertex.last.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in vertex.last.body
    assert vertex.authorized == [next(iter(vertex.tokens))]
    entry = await logged_entry(router, response)
    assert "SECRET" not in json.dumps(entry) and "SECRET" not in raw.decode()


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_gemini_on_vertex_keeps_its_thought_signatures(start_router, vertex, tmp_path, path, stream):
    router = start_router(config(tmp_path, vertex, publisher="google", model="gemini-2.5-pro"))
    call = gemini_part_call("get_weather", {"city": "Oslo"}, signature="sig-oslo")
    from tests.fake_gemini import gemini_sse
    if stream:
        vertex.then(Reply(sse=gemini_sse(None, [call])), Reply(sse=gemini_sse("Cold.")))
    else:
        vertex.then(Reply(body=gemini_response(None, [call])), Reply(body=gemini_response("Cold.")))
    body = body_for(path, "any-model", "weather in Oslo?", tools=tools_for(path), **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, wire = seen(path, body, raw)
    assert [b.name for b in answer.content if isinstance(b, ToolCall)] == ["get_weather"]
    method = "streamGenerateContent" if stream else "generateContent"
    assert vertex.last.path == f"{MODELS}/google/models/gemini-2.5-pro:{method}"

    second, raw2 = await send(router, path, follow_up(path, body, wire, "-3C"))

    assert second.code == 200, raw2
    assert seen(path, body, raw2)[0].text() == "Cold."
    assert vertex.last.body["contents"][1]["parts"][0]["thoughtSignature"] == "sig-oslo"
    assert vertex.token_requests == 1


@pytest.mark.gen_test
async def test_a_token_is_refreshed_before_it_expires(start_router, tmp_path):
    fake = FakeVertex(token_ttl_s=120).start()  # within the refresh margin: every request needs a new one
    try:
        router = start_router(config(tmp_path, fake))
        for _ in range(2):
            response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"))
            assert response.code == 200, response.body
        assert fake.token_requests == 2
        assert len(set(fake.authorized)) == 2
    finally:
        await fake.stop()


@pytest.mark.gen_test
async def test_application_default_credentials(start_router, vertex, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", vertex.service_account_file(tmp_path / "adc.json"))
    router = start_router(config(tmp_path, vertex, credentials_file=None))

    response = await router.post(OPENAI, body_for(OPENAI, "m"))

    assert response.code == 200, response.body
    assert vertex.token_requests == 1 and len(vertex.authorized) == 1


@pytest.mark.gen_test
async def test_credentials_google_refuses_fail_the_request_without_secrets(start_router, vertex, tmp_path):
    cfg = config(tmp_path, vertex)
    info, _ = service_account(vertex.token_uri)  # another key than the one the fake knows
    (tmp_path / "other.json").write_text(json.dumps(info))
    cfg["providers"]["vx"]["credentials_file"] = str(tmp_path / "other.json")
    router = start_router(cfg)

    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"))

    assert response.code == 502
    message = native_error(ANTHROPIC, response)
    assert message.startswith("provider 'vx': could not get a Google access token: RefreshError")
    assert "invalid_grant" in message
    entry = await logged_entry(router, response)
    assert "PRIVATE KEY" not in json.dumps(entry) and vertex.authorized == []


@pytest.mark.gen_test
async def test_vertex_errors_reach_the_client(start_router, vertex, tmp_path):
    router = start_router(config(tmp_path, vertex))
    vertex.then(Reply(status=429, body={"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com",
                                                  "status": "RESOURCE_EXHAUSTED"}}))
    response = await router.post(OPENAI, body_for(OPENAI, "m"))
    assert response.code == 429
    assert native_error(OPENAI, response) == "provider 'vx': upstream returned 429: Quota exceeded for aiplatform.googleapis.com"


def test_the_missing_extra_is_named_at_start(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.auth", None)
    raw = {"providers": {"vx": {"kind": "vertex", "project": "p", "region": "us-east5"}}, "router": {"default": "vx"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    assert caught.value.problems == [
        "providers.vx.kind: kind vertex needs the 'vertex' extra, which is not installed: pip install 'tornrouter[vertex]'"]


def test_project_and_region_are_required():
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"vx": {"kind": "vertex"}}, "router": {"default": "vx"}}, environ={})
    assert any(p.startswith("providers.vx.region: required") for p in caught.value.problems)


# --- faults: the suite's stream faults, on Claude on Vertex -------------------------------------------

from tests.answers import is_error_event, last_event, streamed_text  # noqa: E402
from tests.test_faults import nonstream_fault, stream_fault_before  # noqa: E402
from tests.upstream_faults import TEXT, attempts, request_body, stream_fault_after  # noqa: E402
from tornrouter.validate_stream import validate  # noqa: E402


def with_backup(tmp_path, vertex: FakeVertex, backup_url: str | None, options: dict[str, Any]) -> dict[str, Any]:
    cfg = config(tmp_path, vertex, **options)
    if backup_url is not None:
        cfg["providers"]["backup"] = {"kind": "openai", "base_url": backup_url + "/v1", "api_key": "sk-SECRET"}
        cfg["router"]["default"] = {"to": ["vx/claude-sonnet-4-5@20250929", "backup/gpt-4o"]}
    return cfg


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", ["500", "529", "429_retry_after", "reset_before_answer", "slow_first_byte", "html_error_page"])
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_nonstreamed_fault(start_router, fakes, vertex, tmp_path, fault, with_fallback):
    reply, status, options = nonstream_fault(fault, "anthropic", relayed=False)  # Google's errors as much as Anthropic's
    vertex.then(reply)
    router = start_router(with_backup(tmp_path, vertex, fakes().url if with_fallback else None, options))

    response = await router.post(ANTHROPIC, request_body(ANTHROPIC))

    if with_fallback:
        assert response.code == 200, response.body
        assert response.headers["x-tornrouter-provider"] == "backup"
    else:
        assert response.code == status, response.body
        assert "vx" in native_error(ANTHROPIC, response)


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", ["error_event_first", "drop_before_content", "stall_before_content", "ends_without_content"])
async def test_stream_fault_before_content_fails_over(start_router, fakes, vertex, tmp_path, fault):
    reply, _, options = stream_fault_before(fault, "anthropic")
    vertex.then(reply)
    router = start_router(with_backup(tmp_path, vertex, fakes().url, options))

    response, raw = await send(router, ANTHROPIC, request_body(ANTHROPIC, stream=True))

    assert response.code == 200, raw
    assert validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw).startswith(TEXT["openai"])


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", ["error_event", "dropped", "stalled", "ends_without_terminal_event"])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_stream_fault_after_content(start_router, fakes, vertex, tmp_path, fault, path):
    reply, status, options = stream_fault_after(fault, "anthropic")
    vertex.then(reply)
    router = start_router(with_backup(tmp_path, vertex, fakes().url, options))

    response, raw = await send(router, path, request_body(path, stream=True))

    assert response.code == 200
    assert validate(raw, "openai" if path == OPENAI else "anthropic") == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("vx", 200)] and entry["status"] == status


def test_the_endpoint_follows_the_region():
    from tornrouter.config import ProviderConfig
    from tornrouter.providers.vertex import models_url

    def url(region: str) -> str:
        return models_url(ProviderConfig(name="v", kind="vertex", project="p", region=region))

    assert url("us-east5") == "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic/models"
    assert url("global").startswith("https://aiplatform.googleapis.com/v1/projects/p/locations/global/")
    assert url("eu").startswith("https://aiplatform.eu.rep.googleapis.com/v1/projects/p/locations/eu/")


@pytest.mark.gen_test
async def test_a_clients_beta_flags_reach_claude_on_vertex(start_router, vertex, tmp_path):
    router = start_router(config(tmp_path, vertex))
    headers = {"anthropic-beta": "context-1m-2025-08-07", "anthropic-version": "2023-06-01"}
    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"), headers=headers)
    assert response.code == 200, response.body
    assert vertex.last.headers["Anthropic-Beta"] == "context-1m-2025-08-07"
    assert vertex.last.headers["Authorization"].startswith("Bearer ")  # the token, beside the client's headers
    assert "x-tornrouter-lossy" not in response.headers


@pytest.mark.gen_test
async def test_count_tokens_for_claude_on_vertex_is_estimated(start_router, vertex, tmp_path):
    router = start_router(config(tmp_path, vertex))
    response = await router.post("/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]})
    assert response.code == 200 and json.loads(response.body) == {"input_tokens": 10}
    assert response.headers["x-tornrouter-estimate"] == "characters/4"
    assert vertex.requests == []
