"""``kind: bedrock`` end to end against a fake Bedrock runtime that verifies
every request's SigV4 signature with botocore (``tests/fake_bedrock.py``):
every client API, whole and streamed (AWS event-stream framing), credentials
from the environment or a profile, errors and stream exceptions, the extra
named when missing."""

from __future__ import annotations

import json
import sys

import pytest

from tests.answers import is_error_event, last_event, native_error, streamed_text
from tests.fake_bedrock import (
    ACCESS_KEY, CONVERSE_TEXT, REGION, ROLE_ARN, ROLE_KEY, ROLE_SECRET, ROLE_TOKEN, SECRET_KEY, FakeBedrock, bedrock_error, converse_frames, converse_response,
    exception_frame, frames_of,
)
from tests.fake_upstream import ANTHROPIC_TEXT, Reply, anthropic_sse
from tests.test_gemini import follow_up, seen, streaming, tools_for
from tornrouter.canonical import ToolCall
from tests.upstream_faults import logged_entry, send
from tests.wire import ANTHROPIC, KIND, OPENAI, RESPONSES, body_for
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError
from tornrouter.validate_stream import validate

PATHS = [OPENAI, ANTHROPIC, RESPONSES]
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def aws_env(tmp_path, monkeypatch):
    """The standard chain, kept to what the test sets: no files, no instance metadata."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return monkeypatch


@pytest.fixture
def bedrock(io_loop):
    fake = FakeBedrock().start()
    yield fake
    io_loop.run_sync(fake.stop)


def config(tmp_path, fake: FakeBedrock, **options):
    return {
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {"br": {"kind": "bedrock", "base_url": fake.url, "region": REGION, **options}},
        "router": {"default": f"br/{MODEL}"},
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_every_client_reaches_claude_on_bedrock(start_router, aws_env, bedrock, tmp_path, path, stream):
    router = start_router(config(tmp_path, bedrock))
    body = body_for(path, "any-model", "hi there", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    assert seen(path, body, raw)[0].text().startswith(ANTHROPIC_TEXT)
    method = "invoke-with-response-stream" if stream else "invoke"
    assert bedrock.last.path == f"/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/{method}"
    assert bedrock.verified == 1
    assert bedrock.last.body["anthropic_version"] == "bedrock-2023-05-31"
    entry = await logged_entry(router, response)
    assert "SECRET" not in json.dumps(entry) and "SECRET" not in raw.decode()


@pytest.mark.gen_test
async def test_cache_control_reaches_bedrock(start_router, aws_env, bedrock, tmp_path):
    router = start_router(config(tmp_path, bedrock))
    system = [{"type": "text", "text": "long instructions", "cache_control": {"type": "ephemeral"}}]
    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m", system=system))
    assert response.code == 200, response.body
    assert bedrock.last.body["system"] == system
    assert "x-tornrouter-lossy" not in response.headers


@pytest.mark.gen_test
async def test_a_profile_from_the_shared_files(start_router, aws_env, tmp_path):
    (tmp_path / "no-credentials").write_text(
        "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n"
        "[router]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = profile-secret-SECRET\n")
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    fake = FakeBedrock(access_key="AKIAPROFILEKEY000001", secret_key="profile-secret-SECRET").start()
    try:
        router = start_router(config(tmp_path, fake, profile="router"))
        response = await router.post(OPENAI, body_for(OPENAI, "m"))
        assert response.code == 200, response.body
        assert fake.verified == 1
    finally:
        await fake.stop()


@pytest.mark.gen_test
async def test_a_session_token_is_signed_and_sent(start_router, aws_env, tmp_path):
    aws_env.setenv("AWS_SESSION_TOKEN", "session-token-SECRET")
    fake = FakeBedrock(session_token="session-token-SECRET").start()
    try:
        router = start_router(config(tmp_path, fake))
        response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"))
        assert response.code == 200, response.body
        assert fake.verified == 1
    finally:
        await fake.stop()


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_bad_signature_is_bedrocks_403_and_no_key_is_shown(start_router, aws_env, tmp_path, stream):
    fake = FakeBedrock(secret_key="another-secret").start()
    try:
        router = start_router(config(tmp_path, fake))
        response, raw = await send(router, ANTHROPIC, body_for(ANTHROPIC, "m", **streaming(ANTHROPIC, stream)))
        assert response.code == 403
        response._body = raw
        assert "InvalidSignatureException: The request signature we calculated does not match" in native_error(ANTHROPIC, response)
        assert json.loads(raw)["error"]["type"] == "permission_error"
        entry = await logged_entry(router, response)
        assert "SECRET" not in raw.decode() and "SECRET" not in json.dumps(entry) and SECRET_KEY not in json.dumps(entry)
    finally:
        await fake.stop()


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_throttling_is_429_in_the_clients_shape(start_router, aws_env, bedrock, tmp_path, path):
    router = start_router(config(tmp_path, bedrock))
    bedrock.then(Reply(status=429, body=bedrock_error("Too many requests, please wait before trying again."),
                       headers={"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}))
    response = await router.post(path, body_for(path, "m"))
    assert response.code == 429
    assert native_error(path, response) == (
        "provider 'br': upstream returned 429: ThrottlingException: Too many requests, please wait before trying again.")


@pytest.mark.gen_test
@pytest.mark.parametrize("path", PATHS)
async def test_a_stream_exception_after_content_ends_the_clients_stream(start_router, aws_env, bedrock, tmp_path, path):
    router = start_router(config(tmp_path, bedrock))
    frames = frames_of(anthropic_sse("one two three four five", model="claude-fake"))
    bedrock.then(Reply(sse=[*frames[:6], exception_frame("modelStreamErrorException", "The model stream broke.")]))

    response, raw = await send(router, path, body_for(path, "m", **streaming(path, True)))

    assert response.code == 200
    assert validate(raw, KIND[path]) == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "


@pytest.mark.gen_test
async def test_a_throttled_stream_before_content_fails_over(start_router, aws_env, bedrock, fakes, tmp_path):
    backup = fakes()
    cfg = config(tmp_path, bedrock)
    cfg["providers"]["backup"] = {"kind": "anthropic", "base_url": backup.url, "api_key": "sk-ant-SECRET"}
    cfg["router"]["default"] = {"to": [f"br/{MODEL}", "backup/claude-sonnet-4-5"]}
    router = start_router(cfg)
    bedrock.then(Reply(sse=[exception_frame("throttlingException", "Too many tokens.")]))

    response, raw = await send(router, ANTHROPIC, body_for(ANTHROPIC, "m", stream=True))

    assert response.code == 200, raw
    assert validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw).startswith(ANTHROPIC_TEXT)
    assert response.headers["x-tornrouter-provider"] == "backup"


def test_the_missing_extra_is_named_at_start(monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore", None)
    raw = {"providers": {"br": {"kind": "bedrock", "region": "us-east-1"}}, "router": {"default": "br"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    assert caught.value.problems == [
        "providers.br.kind: kind bedrock needs the 'bedrock' extra, which is not installed: pip install 'tornrouter[bedrock]'"]


# --- other models: the Converse API ----------------------------------------------------------------

LLAMA = "meta.llama3-3-70b-instruct-v1:0"


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_other_models_go_through_converse(start_router, aws_env, bedrock, tmp_path, path, stream):
    cfg = config(tmp_path, bedrock)
    cfg["router"]["default"] = f"br/{LLAMA}"
    router = start_router(cfg)
    body = body_for(path, "any-model", "hi there", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, _ = seen(path, body, raw)
    assert answer.text() == f"{CONVERSE_TEXT} You said: hi there"
    assert answer.usage.input_tokens == 12 and answer.usage.output_tokens == 8
    assert bedrock.last.path == f"/model/meta.llama3-3-70b-instruct-v1%3A0/{'converse-stream' if stream else 'converse'}"
    assert bedrock.last.body["messages"] == [{"role": "user", "content": [{"text": "hi there"}]}]
    assert bedrock.verified == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_converse_tool_cycle(start_router, aws_env, bedrock, tmp_path, path, stream):
    cfg = config(tmp_path, bedrock)
    cfg["router"]["default"] = f"br/{LLAMA}"
    router = start_router(cfg)
    use = {"toolUseId": "tooluse_abc123", "name": "get_weather", "input": {"city": "Lima"}}
    bedrock.then(Reply(sse=converse_frames("Checking.", use)) if stream else Reply(body=converse_response("Checking.", use)))
    body = body_for(path, "m", "weather in Lima?", tools=tools_for(path), **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, wire = seen(path, body, raw)
    assert answer.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in answer.content if isinstance(b, ToolCall)] == [("tooluse_abc123", "get_weather", {"city": "Lima"})]
    assert bedrock.last.body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": tools_for(OPENAI)[0]["function"]["parameters"]}

    second, raw2 = await send(router, path, follow_up(path, body, wire, "22C"))

    assert second.code == 200, raw2
    assert bedrock.last.body["messages"][1:] == [
        {"role": "assistant", "content": [{"text": "Checking."}, {"toolUse": use}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_abc123", "content": [{"text": "22C"}]}}]},
    ]


@pytest.mark.gen_test
async def test_cache_control_becomes_a_cache_point(start_router, aws_env, bedrock, tmp_path):
    cfg = config(tmp_path, bedrock)
    cfg["router"]["default"] = f"br/{LLAMA}"
    router = start_router(cfg)
    system = [{"type": "text", "text": "long instructions", "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "a long document", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "what now?"}]}]

    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m", system=system, messages=messages))

    assert response.code == 200, response.body
    assert bedrock.last.body["system"] == [{"text": "long instructions"}, {"cachePoint": {"type": "default"}}]
    assert bedrock.last.body["messages"][0]["content"] == [
        {"text": "a long document"}, {"cachePoint": {"type": "default"}},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}, {"text": "what now?"}]
    assert "x-tornrouter-lossy" not in response.headers
    assert json.loads(response.body)["usage"]["cache_read_input_tokens"] == 4


@pytest.mark.gen_test
async def test_a_role_assumed_through_sts(start_router, aws_env, tmp_path):
    """The environment's keys sign AssumeRole; the role's temporary credentials
    sign the Bedrock calls, and are reused while they are valid."""
    fake = FakeBedrock(access_key=ROLE_KEY, secret_key=ROLE_SECRET, session_token=ROLE_TOKEN).start()
    aws_env.setenv("AWS_ENDPOINT_URL_STS", fake.url)
    aws_env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        router = start_router(config(tmp_path, fake, role_arn=ROLE_ARN))
        for path in (OPENAI, ANTHROPIC):
            response = await router.post(path, body_for(path, "m"))
            assert response.code == 200, response.body
        assert (fake.assumed, fake.verified) == (1, 2)
        entries = json.dumps(router.log_entries())
        assert "SECRET" not in entries
    finally:
        await fake.stop()


# --- faults on a Converse stream -----------------------------------------------------------------

from tests.fake_bedrock import converse_event  # noqa: E402
from tests.upstream_faults import SHORT  # noqa: E402

CUT = converse_frames("one two three four five six")


@pytest.mark.gen_test
@pytest.mark.parametrize("fault, status", [
    ("dropped", 502), ("stalled", 504), ("exception", 500), ("corrupt_frame", 502), ("ends_without_stop", 502)])
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_a_converse_stream_failing_after_content(start_router, aws_env, bedrock, fakes, tmp_path, path, fault, status):
    cfg = config(tmp_path, bedrock, idle_timeout_s=SHORT)
    cfg["providers"]["backup"] = {"kind": "anthropic", "base_url": fakes().url, "api_key": "sk-ant-SECRET"}
    cfg["router"]["default"] = {"to": [f"br/{LLAMA}", "backup/claude-sonnet-4-5"]}
    router = start_router(cfg)
    head = CUT[:4]  # messageStart and three words
    bad = bytearray(converse_event("contentBlockDelta", {"delta": {"text": "x"}, "contentBlockIndex": 0}))
    bad[-1] ^= 0xFF
    bedrock.then({
        "dropped": Reply(sse=head, drop=True),
        "stalled": Reply(sse=CUT, stall_after=4),
        "exception": Reply(sse=[*head, exception_frame("internalServerException", "Internal error.")]),
        "corrupt_frame": Reply(sse=[*head, bytes(bad)]),
        "ends_without_stop": Reply(sse=head),
    }[fault])

    response, raw = await send(router, path, body_for(path, "m", **streaming(path, True)))

    assert response.code == 200
    assert validate(raw, KIND[path]) == []
    assert is_error_event(path, last_event(raw)), raw
    assert streamed_text(path, raw) == "one two three "
    assert response.headers["x-tornrouter-provider"] == "br"  # past the commit point: no fallback
    entry = await logged_entry(router, response)
    assert entry["status"] == status and entry["error"]


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", ["throttled", "dropped_at_once", "silent"])
async def test_a_converse_stream_failing_before_content_falls_back(start_router, aws_env, bedrock, fakes, tmp_path, fault):
    cfg = config(tmp_path, bedrock, first_byte_timeout_s=SHORT)
    cfg["providers"]["backup"] = {"kind": "anthropic", "base_url": fakes().url, "api_key": "sk-ant-SECRET"}
    cfg["router"]["default"] = {"to": [f"br/{LLAMA}", "backup/claude-sonnet-4-5"]}
    router = start_router(cfg)
    bedrock.then({
        "throttled": Reply(sse=[CUT[0], exception_frame("throttlingException", "Too many tokens.")]),
        "dropped_at_once": Reply(sse=[CUT[0]], drop=True),
        "silent": Reply(sse=CUT, stall_after=0),
    }[fault])

    response, raw = await send(router, ANTHROPIC, body_for(ANTHROPIC, "m", stream=True))

    assert response.code == 200, raw
    assert validate(raw, "anthropic") == []
    assert streamed_text(ANTHROPIC, raw).startswith(ANTHROPIC_TEXT)
    assert response.headers["x-tornrouter-provider"] == "backup"


@pytest.mark.gen_test
async def test_a_clients_beta_flags_reach_claude_on_bedrock_in_the_body(start_router, aws_env, bedrock, tmp_path):
    router = start_router(config(tmp_path, bedrock))
    headers = {"anthropic-beta": "context-1m-2025-08-07, interleaved-thinking-2025-05-14", "anthropic-version": "2023-06-01",
               "anthropic-dangerous-direct-browser-access": "true"}
    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"), headers=headers)
    assert response.code == 200, response.body
    assert bedrock.last.body["anthropic_beta"] == ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]
    assert bedrock.verified == 1  # still signed as sent
    assert response.headers["x-tornrouter-lossy"] == "anthropic-dangerous-direct-browser-access"
