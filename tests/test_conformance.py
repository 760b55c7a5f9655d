"""``tornrouter conformance`` against the fake upstreams: every row passes
against a model that answers the battery well (``tests/conformance_model.py``),
each fault of a broken upstream fails exactly the rows that check for it, a
hung upstream fails rows by timeout, and the command line prints the table,
writes the JSON report and exits 0, 1 or 2."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conformance_model import FAULTS, ConformanceBedrock, ConformanceGemini, conformance_model
from tests.fake_bedrock import ACCESS_KEY, REGION, SECRET_KEY
from tests.fake_azure import AZURE_KEY, FakeAzure
from tests.fake_gemini import GEMINI_KEY
from tests.fake_upstream import FakeUpstream, Reply
from tests.processes import ROOT, run_cli
from tornrouter import __version__
from tornrouter.config import parse_config
from tornrouter.conformance.arguments import ROW_NAMES
from tornrouter.conformance.battery import ROWS
from tornrouter.conformance.command import run

KEY = "sk-conformance-SECRET"
KINDS = {"openai": "/v1", "anthropic": "", "openai-responses": "/v1"}
# What each fault breaks, and nothing else.
BROKEN_BY = {
    "drop_usage": {"usage"},
    "out_of_order": {"stream_text", "stream_tool_call"},
    "html_500": {"error_shape"},
    "ignore_stop": {"stop_sequence"},
    "mangle_arguments": {"tool_call", "parallel_tool_calls", "stream_tool_call"},
}


def broken_by(fault: str, kind: str) -> set[str]:
    """A Responses stream carries its usage in its last event, which the router
    never reads once an event came out of order: its usage is lost too."""
    extra = {"usage"} if (fault, kind) == ("out_of_order", "openai-responses") else set()
    return BROKEN_BY[fault] | extra


def provider_entry(kind: str, url: str) -> dict[str, Any]:
    return {"kind": kind, "base_url": url + KINDS[kind], "api_key": KEY, "models": ["fake-model"]}


def provider_config(kind: str, url: str):
    config = parse_config({"providers": {"candidate": provider_entry(kind, url)}, "router": {"default": "candidate"}}, environ={})
    return config.providers["candidate"]


def statuses(report) -> dict[str, str]:
    return {outcome.name: outcome.status for outcome in report.outcomes}


def skipped_by_api(kind: str) -> set[str]:
    """The Responses API has no stop sequences: the translation drops them and the row says so."""
    return {"stop_sequence"} if kind == "openai-responses" else set()


async def battery(fake: FakeUpstream, kind: str, client: str = "openai", timeout_s: float = 20.0, rows=ROWS):
    return await run(provider_config(kind, fake.url), "fake-model", client, list(rows), timeout_s)


def test_rows_are_the_parsers_rows():
    assert tuple(row.name for row in ROWS) == ROW_NAMES


@pytest.mark.gen_test
@pytest.mark.parametrize("client", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_every_row_passes_against_a_model_that_answers_well(fakes, kind, client):
    fake = fakes()
    fake.chooser = conformance_model()
    report = await battery(fake, kind, client)
    skipped = skipped_by_api(kind)
    assert statuses(report) == {name: "skip" if name in skipped else "pass" for name in ROW_NAMES}, report.table()
    assert report.passed
    for outcome in report.outcomes:
        if outcome.name in skipped:
            assert outcome.reason == "the provider's API has no stop sequences (the translation drops " + (
                "stop)" if client == "openai" else "stop_sequences)")
    tool_calls = next(o for o in report.outcomes if o.name == "parallel_tool_calls")
    assert tool_calls.reason == "2 calls in one answer: get_weather('Paris'), get_weather('Tokyo')"


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fault", FAULTS)
async def test_each_fault_fails_exactly_its_rows(fakes, kind, fault):
    fake = fakes()
    fake.chooser = conformance_model(frozenset({fault}))
    report = await battery(fake, kind)
    skipped = skipped_by_api(kind)
    expected = {name: "skip" if name in skipped else "fail" if name in broken_by(fault, kind) else "pass" for name in ROW_NAMES}
    assert statuses(report) == expected, report.table()


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_broken_upstream_fails_the_right_rows_with_reasons(fakes, kind):
    fake = fakes()
    fake.chooser = conformance_model(frozenset(FAULTS))
    report = await battery(fake, kind)
    failed = {o.name: o.reason for o in report.outcomes if o.status == "fail"}
    assert set(failed) == set().union(*BROKEN_BY.values()) - skipped_by_api(kind), report.table()
    assert not report.passed
    assert failed["usage"] == "whole answer: no usage"
    assert failed["error_shape"] == ("the upstream answered 500, the client gets 502: provider 'candidate': "
                                            "upstream returned 500 with a text/html page: \"500 Internal Server Error\"")
    assert "arguments" in failed["tool_call"]
    assert "stream" in failed["stream_text"]
    if kind != "openai-responses":
        assert failed["stop_sequence"] == "the answer goes past the stop sequence '7': '1, 2, 3, 4, 5, 6, 7, 8, 9, 10'"


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_hung_upstream_fails_rows_by_timeout(fakes, kind):
    fake = fakes()
    never = asyncio.Event()
    fake.chooser = lambda _kind, _body: Reply(gate=never)  # holds every answer until the client leaves
    rows = [row for row in ROWS if row.name in ("plain_text", "stream_text", "error_shape")]
    report = await battery(fake, kind, timeout_s=0.5, rows=rows)
    assert statuses(report) == {"plain_text": "fail", "stream_text": "fail", "error_shape": "fail"}
    reasons = [outcome.reason for outcome in report.outcomes]
    assert reasons[0].startswith("504 upstream_timeout: provider 'candidate': timed out"), reasons
    assert reasons[1] == "the stream failed: provider 'candidate': timed out after 0.5 s waiting for the first byte"
    assert reasons[2].startswith("no HTTP answer, the client gets 504: provider 'candidate': timed out"), reasons


@pytest.mark.gen_test
async def test_every_row_passes_against_an_azure_deployment(io_loop):
    """Azure refuses the unknown model itself (its deployment does not exist):
    the error row sees Azure's own 404."""
    fake = FakeAzure(deployments=("prod-fake",)).start()
    fake.chooser = conformance_model()
    entry = {"kind": "azure", "base_url": fake.url, "api_key": AZURE_KEY, "deployments": {"fake-model": "prod-fake"}}
    config = parse_config({"providers": {"candidate": entry}, "router": {"default": "candidate"}}, environ={})
    try:
        report = await run(config.providers["candidate"], "fake-model", "openai", list(ROWS), 20.0)
    finally:
        await fake.stop()
    assert statuses(report) == {name: "pass" for name in ROW_NAMES}, report.table()
    error = next(o for o in report.outcomes if o.name == "error_shape")
    assert error.reason.startswith("upstream 404, the client gets 404: provider 'candidate': upstream returned 404: "
                                   "The API deployment for this resource does not exist.")


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", [None, *FAULTS])
async def test_gemini_passes_and_each_fault_fails_its_rows(io_loop, fault):
    """Gemini's stream has no validator of its own: the client's stream is
    checked, and a finish before the last content loses that content."""
    fake = ConformanceGemini(frozenset({fault} if fault else ())).start()
    entry = {"kind": "gemini", "base_url": fake.base_url, "api_key": GEMINI_KEY}
    config = parse_config({"providers": {"candidate": entry}, "router": {"default": "candidate"}}, environ={})
    try:
        report = await run(config.providers["candidate"], "gemini-fake", "openai", list(ROWS), 20.0)
    finally:
        await fake.stop()
    broken = BROKEN_BY[fault] if fault else set()
    assert statuses(report) == {name: "fail" if name in broken else "pass" for name in ROW_NAMES}, report.table()


@pytest.mark.gen_test
@pytest.mark.parametrize("fault", [None, *FAULTS])
async def test_claude_on_bedrock_passes_and_each_fault_fails_its_rows(io_loop, tmp_path, monkeypatch, fault):
    """Bedrock refuses a model id it does not know with a 400 ValidationException."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    fake = ConformanceBedrock(frozenset({fault} if fault else ())).start()
    entry = {"kind": "bedrock", "base_url": fake.url, "region": REGION}
    config = parse_config({"providers": {"candidate": entry}, "router": {"default": "candidate"}}, environ={})
    try:
        report = await run(config.providers["candidate"], "anthropic.claude-fake-v1:0", "openai", list(ROWS), 20.0)
    finally:
        await fake.stop()
    broken = BROKEN_BY[fault] if fault else set()
    assert statuses(report) == {name: "fail" if name in broken else "pass" for name in ROW_NAMES}, report.table()
    assert fake.verified == len(fake.requests) > len(ROWS)  # every request signed
    if fault is None:
        error = next(o for o in report.outcomes if o.name == "error_shape")
        assert error.reason.startswith("upstream 400, the client gets 400: provider 'candidate': ")
        assert "The provided model identifier is invalid." in error.reason


# --- the command line -------------------------------------------------------------------------------------


def write_conf(path: Path, url: str, kind: str = "openai") -> Path:
    config = {"providers": {"candidate": provider_entry(kind, url), "echo": {"kind": "echo"}}, "router": {"default": "echo"}}
    path.write_text(json.dumps(config))
    return path


async def conformance_cli(*args: str) -> tuple[int, str, str]:
    """``python -m tornrouter conformance ARGS`` in a subprocess, while this loop serves the fake upstream."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tornrouter", "conformance", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


@pytest.mark.gen_test(timeout=60)
async def test_the_command_prints_the_table_and_writes_the_report(fakes, tmp_path):
    fake = fakes()
    fake.chooser = conformance_model()
    conf = write_conf(tmp_path / "conf.yaml", fake.url, "anthropic")
    code, out, err = await conformance_cli("--conf", str(conf), "--provider", "candidate", "--json", str(tmp_path / "r.json"),
                                           "--no-images")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "provider 'candidate' (anthropic), model fake-model, requests translated from the openai API"
    assert lines[1].split() == ["ROW", "RESULT", "SECONDS", "DETAIL"]
    assert [line.split()[:2] for line in lines[2:-1]] == [
        [name, "skip" if name == "image" else "pass"] for name in ROW_NAMES
    ]
    assert lines[-1] == "12 passed, 0 failed, 1 skipped: conforms"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["provider"] == "candidate" and report["kind"] == "anthropic" and report["model"] == "fake-model"
    assert report["client"] == "openai" and report["passed"] is True and report["timeout_s"] == 60
    assert report["tornrouter"] == __version__ and report["ran_at"].endswith("+00:00")
    assert report["counts"] == {"pass": 12, "fail": 0, "skip": 1}
    assert [row["name"] for row in report["rows"]] == list(ROW_NAMES)
    assert set(report["rows"][0]) == {"name", "required", "status", "reason", "seconds", "lossy", "details"}
    image = next(row for row in report["rows"] if row["name"] == "image")
    assert image["status"] == "skip" and image["reason"] == "--no-images: the model takes no images"
    plain = report["rows"][0]
    assert plain["details"]["answer"]["text"] == "pong" and plain["details"]["answer"]["stop_reason"] == "end_turn"
    stream = next(row for row in report["rows"] if row["name"] == "stream_tool_call")
    assert stream["details"]["stream"]["problems"] == [] and stream["details"]["stream"]["error"] is None
    assert KEY not in out + err + (tmp_path / "r.json").read_text()


@pytest.mark.gen_test(timeout=60)
async def test_a_required_row_that_fails_fails_the_command(fakes, tmp_path):
    fake = fakes()
    fake.chooser = conformance_model(frozenset({"drop_usage"}))
    conf = write_conf(tmp_path / "conf.yaml", fake.url)
    code, out, _ = await conformance_cli("--conf", str(conf), "--provider", "candidate", "--json", str(tmp_path / "r.json"),
                                         "--only", "plain_text", "--only", "usage")
    assert code == 1
    assert [line.split()[:2] for line in out.splitlines()[2:-1]] == [["plain_text", "pass"], ["usage", "FAIL"]]
    assert out.splitlines()[-1] == "1 passed, 1 failed, 0 skipped: does NOT conform"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and [row["status"] for row in report["rows"]] == ["pass", "fail"]


@pytest.mark.gen_test(timeout=60)
async def test_an_optional_row_that_fails_or_a_skipped_one_does_not_fail_the_command(fakes, tmp_path):
    fake = fakes()
    fake.chooser = conformance_model(frozenset({"mangle_arguments"}))
    conf = write_conf(tmp_path / "conf.yaml", fake.url)
    code, out, _ = await conformance_cli("--conf", str(conf), "--provider", "candidate", "--only", "parallel_tool_calls",
                                         "--only", "tool_call", "--skip", "tool_call")
    assert code == 0
    assert out.splitlines()[2].split()[:2] == ["tool_call", "skip"]
    assert out.splitlines()[2].endswith("--skip: a limit accepted on the command line")
    assert out.splitlines()[3].split()[:2] == ["parallel_tool_calls", "FAIL*"]
    assert out.splitlines()[-1] == "0 passed, 1 failed, 1 skipped (* optional: 1 of the failures do not fail the run): conforms"


def test_what_the_command_cannot_run_is_named(tmp_path):
    conf = write_conf(tmp_path / "conf.yaml", "http://127.0.0.1:9")
    unknown = run_cli("conformance", "--conf", str(conf), "--provider", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr == f"tornrouter conformance: --provider: no provider 'nope' in {conf} (it has: candidate, echo)\n"
    no_model = run_cli("conformance", "--conf", str(conf), "--provider", "echo")
    assert no_model.returncode == 2
    assert no_model.stderr == "tornrouter conformance: --model: required, since provider 'echo' lists no models\n"
    unwritable = run_cli("conformance", "--conf", str(conf), "--provider", "echo", "--model", "m", "--only", "plain_text",
                         "--json", str(tmp_path / "no-such-dir" / "r.json"))
    assert unwritable.returncode == 2 and unwritable.stdout.splitlines()[2].split()[:2] == ["plain_text", "pass"]
    assert unwritable.stderr == (f"tornrouter conformance: --json: cannot write {tmp_path / 'no-such-dir' / 'r.json'}: "
                                 "No such file or directory\n")
    (tmp_path / "bad.yaml").write_text("providers: {x: {kind: nonsense}}\n")
    bad = run_cli("conformance", "--conf", str(tmp_path / "bad.yaml"), "--provider", "x")
    assert bad.returncode == 2 and bad.stderr.startswith(f"{tmp_path / 'bad.yaml'}: providers.x.kind")
