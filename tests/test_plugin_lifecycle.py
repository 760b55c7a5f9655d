"""Plugins' and classifiers' ``setup`` and ``close``: once per instance, at
start, at a reload (the old instances closed after their last request), at
stop and in each worker; a failing ``setup`` refuses a start or a reload.

The ``Journal`` test plugin and classifier append a line per event to a file,
with their process id and a serial per instance, so a real router's whole
history can be read back at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import Reply
from tests.processes import read_log, run_cli, write_config
from tests.waiting import poll
from tests.wire import chat
from tornrouter import components
from tornrouter.components import Components
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError
from tornrouter.plugins import BasePlugin

OPENAI = "/v1/chat/completions"


def journal_plugin(journal: Path, **behaviour: str) -> dict[str, Any]:
    return {"use": "tests.plugins_for_tests.Journal", "settings": {"journal": str(journal), **behaviour}}


def journal_classifier(journal: Path) -> dict[str, Any]:
    return {"use": "tests.plugins_for_tests.JournalClassifier", "journal": str(journal)}


def write_conf(path: Path, log_path: Path, upstream_url: str | None = None, routes: list | None = None,
               **sections: list) -> Path:
    """``write_config``'s router, with ``plugins:`` and ``classifiers:``."""
    write_config(path, upstream_url, log_path, routes=routes)
    path.write_text(json.dumps({**json.loads(path.read_text()), **sections}))
    return path


def read_journal(path: Path) -> list[tuple[str, str, str]]:
    """(event, name, instance) per line; ``instance`` is ``<pid>/<serial>``."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(event, name, f"{pid}/{serial}") for event, name, serial, pid in lines]


def lifetimes(journal: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    """instance -> its events in order, each checked to be one lifetime:
    set up first, closed last, once each."""
    events: dict[str, list[str]] = defaultdict(list)
    for event, _, instance in journal:
        events[instance].append(event)
    for instance, seen in events.items():
        assert seen[0] == "setup" and seen[-1] == "close", (instance, seen)
        assert seen.count("setup") == seen.count("close") == 1, (instance, seen)
    return dict(events)


def open_fds(pid: int, path: Path) -> int:
    """How many of the process's file descriptors are open on ``path``."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if _target(fd) == str(path))


def _target(fd: Path) -> str | None:
    try:
        return os.readlink(fd)
    except FileNotFoundError:  # closed meanwhile
        return None


# --- one runtime, in process ------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_readme_audit_plugin_holds_its_file_from_setup_to_close(start_router, upstream, tmp_path):
    audit_path = tmp_path / "audit.jsonl"
    router = start_router(plugins=[{"use": "examples.plugins.AuditTrail", "settings": {"path": str(audit_path)}}])
    await router.ready
    ((audit, _),) = router.runtime.components.plugins
    assert not audit._file.closed  # opened before the first request
    for text in ("hello", "again"):
        assert (await router.post(OPENAI, chat("gpt-4o", text))).code == 200
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(line["model"], line["tags"]) for line in lines] == [("gpt-4o", [])] * 2
    assert all(line["tokens"]["output"] > 0 for line in lines)
    await router.runtime.components.close()
    assert audit._file.closed


@pytest.mark.gen_test
async def test_entries_of_one_class_get_distinct_ids(start_router, upstream, tmp_path):
    redact = {"use": "redact", "settings": {"patterns": ["secret"]}}
    router = start_router(plugins=[redact, redact, redact])
    await router.post(OPENAI, chat("gpt-4o", "a secret"))
    boom = "tests.plugins_for_tests.Boom"
    failing = start_router(plugins=[{"use": boom}, {"use": boom, "settings": {"hook": "on_start"}}])
    response = await failing.post(OPENAI, chat("gpt-4o", "hello"))
    assert json.loads(response.body)["error"]["message"] == "plugin 'boom#2' failed: boom in on_start"
    (entry,) = router.log_entries()
    assert entry["plugins"] == ["redact"]  # the first one redacted; the others found nothing left
    assert [plugin.id for plugin, _ in router.runtime.components.plugins] == ["redact", "redact#2", "redact#3"]


def config_of(tmp_path: Path, *plugins: dict[str, Any]) -> Any:
    raw = {"providers": {"echo": {"kind": "echo"}}, "router": {"default": "echo"},
           "classifiers": [journal_classifier(tmp_path / "journal")], "plugins": list(plugins)}
    return parse_config(raw, environ={})


@pytest.mark.gen_test
async def test_a_failing_setup_closes_those_set_up_before_it(tmp_path):
    journal = tmp_path / "journal"
    built = Components(config_of(tmp_path, journal_plugin(journal), journal_plugin(journal, fail="setup"),
                                 journal_plugin(journal)))
    with pytest.raises(ConfigError) as refused:
        await built.setup()
    assert refused.value.problems == ["plugins.1: plugin 'journal#2': setup failed: RuntimeError: no setup today"]
    assert [(event, name) for event, name, _ in read_journal(journal)] == [
        ("setup", "JournalClassifier"), ("setup", "journal"), ("close", "journal"), ("close", "JournalClassifier"),
    ]


@pytest.mark.gen_test
async def test_a_setup_that_hangs_is_refused_in_time(tmp_path, monkeypatch):
    monkeypatch.setattr(components, "SETUP_TIMEOUT_S", 0.1)
    built = Components(config_of(tmp_path, journal_plugin(tmp_path / "journal", hang="setup")))
    with pytest.raises(ConfigError) as refused:
        await built.setup()
    assert refused.value.problems == ["plugins.0: plugin 'journal': setup did not finish within 0.1 s"]
    assert [event for event, _, _ in read_journal(tmp_path / "journal")] == ["setup", "close"]  # the classifier


@pytest.mark.gen_test
async def test_a_setup_cancelled_closes_those_set_up(tmp_path):
    built = Components(config_of(tmp_path, journal_plugin(tmp_path / "journal", hang="setup")))
    setup = asyncio.ensure_future(built.setup())
    await poll(lambda: read_journal(tmp_path / "journal"), "the classifier's setup")
    setup.cancel()
    with pytest.raises(asyncio.CancelledError):
        await setup
    assert [event for event, _, _ in read_journal(tmp_path / "journal")] == ["setup", "close"]


@pytest.mark.gen_test
async def test_close_errors_are_logged_and_the_others_closed(tmp_path, log_guard, monkeypatch, caplog):
    log_guard.expect("tornrouter", r"^plugins\.0: plugin 'journal': close failed; going on$")  # with its traceback
    monkeypatch.setattr(components, "CLOSE_TIMEOUT_S", 0.1)
    journal = tmp_path / "journal"
    built = Components(config_of(tmp_path, journal_plugin(journal, fail="close"), journal_plugin(journal, hang="close")))
    await built.setup()
    await built.close()
    await built.close()  # once only, whoever calls
    assert [(event, name) for event, name, _ in read_journal(journal)] == [
        ("setup", "JournalClassifier"), ("setup", "journal"), ("setup", "journal#2"), ("close", "JournalClassifier"),
    ]
    assert "plugins.1: plugin 'journal#2': close did not finish within 0.1 s; going on" in caplog.messages


def test_setup_and_close_must_be_coroutines():
    with pytest.raises(TypeError, match=r"Sync\.setup must be a coroutine function: write 'async def setup\(self\)'"):
        type("Sync", (BasePlugin,), {"setup": lambda self: None})


def test_check_builds_but_does_not_set_up(tmp_path):
    journal = tmp_path / "journal"
    conf = write_conf(tmp_path / "router.yaml", tmp_path / "requests.jsonl",
                      plugins=[journal_plugin(journal, fail="setup")], classifiers=[journal_classifier(journal)])
    result = run_cli("--conf", str(conf), "--check")
    assert result.returncode == 0 and result.stdout == f"{conf}: ok\n"
    assert not journal.exists()


# --- real router processes ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_each_instance_is_set_up_and_closed_once_across_a_reload(spawn, upstream, tmp_path):
    journal, audit_path, log_path = tmp_path / "journal", tmp_path / "audit.jsonl", tmp_path / "requests.jsonl"
    audit = {"use": "examples.plugins.AuditTrail", "settings": {"path": str(audit_path)}}
    conf = write_conf(tmp_path / "router.yaml", log_path, upstream.url, routes=[{"model": "gpt-*", "to": "oai"}],
                      plugins=[journal_plugin(journal), audit], classifiers=[journal_classifier(journal)])
    router = await spawn(conf).start()
    # The port accepts once it is bound, which is before the setups end: wait for them, not for a request.
    await poll(lambda: len(read_journal(journal)) >= 2, "the plugin and the classifier to be set up")
    assert [event for event, _, _ in read_journal(journal)] == ["setup", "setup"]  # before any request
    assert (await router.post(chat("gpt-x", "first"))).code == 200

    gate = asyncio.Event()
    upstream.then(Reply(gate=gate))
    held = router.post(chat("gpt-x", "held"))
    await poll(lambda: len(upstream.requests) == 2, "the held request upstream")
    router.send(signal.SIGHUP)
    await router.wait_for("config reloaded")
    assert [event for event, _, _ in read_journal(journal)].count("close") == 0  # a request is still the old ones'
    assert open_fds(router.proc.pid, audit_path) == 2
    assert (await router.post(chat("gpt-x", "after"))).code == 200
    gate.set()
    assert (await held).code == 200
    await poll(lambda: open_fds(router.proc.pid, audit_path) == 1, "the old audit file to be closed")

    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    plugin_lives = [events for events in lifetimes(read_journal(journal)).values() if "start" in events]
    assert plugin_lives == [["setup", "start", "end", "start", "end", "close"], ["setup", "start", "end", "close"]]
    assert len(lifetimes(read_journal(journal))) == 4  # and the two classifiers'
    assert len(audit_path.read_text().splitlines()) == len(read_log(log_path)) == 3


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_failing_setup_refuses_the_start(spawn, tmp_path, processes):
    journal = tmp_path / "journal"
    conf = write_conf(tmp_path / "router.yaml", tmp_path / "requests.jsonl",
                      plugins=[journal_plugin(journal), journal_plugin(journal, fail="setup")])
    router = spawn(conf, "--processes", processes)
    assert await router.exit_code() == 2
    refusal = f"start refused: {conf}: plugins.1: plugin 'journal#2': setup failed: RuntimeError: no setup today"
    assert router.output().count(refusal) == int(processes)
    lives = lifetimes(read_journal(journal))
    assert list(lives.values()) == [["setup", "close"]] * int(processes)  # the first, in each process


@pytest.mark.gen_test(timeout=90)
async def test_a_failing_setup_refuses_the_reload(spawn, tmp_path):
    journal, log_path = tmp_path / "journal", tmp_path / "requests.jsonl"
    conf = write_conf(tmp_path / "router.yaml", log_path, routes=[{"model": "*", "to": "echo/first"}],
                      plugins=[journal_plugin(journal)])
    router = await spawn(conf).start()
    write_conf(conf, log_path, routes=[{"model": "*", "to": "echo/second"}],
               plugins=[journal_plugin(journal), journal_plugin(journal, fail="setup")])
    router.send(signal.SIGHUP)
    out = await router.wait_for("reload refused: still serving the config loaded before")
    assert f"reload refused: {conf}: plugins.1: plugin 'journal#2': setup failed: RuntimeError: no setup today" in out
    response = await router.post(chat("any", "still there?"))
    assert response.code == 200 and response.headers["x-tornrouter-model"] == "first"

    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    lives = list(lifetimes(read_journal(journal)).values())
    assert lives == [["setup", "start", "end", "close"], ["setup", "close"]]  # the refused one closed at once
    assert len(read_log(log_path)) == 1


@pytest.mark.gen_test(timeout=120)
async def test_each_worker_sets_up_and_closes_its_own(spawn, tmp_path):
    journal = tmp_path / "journal"
    conf = write_conf(tmp_path / "router.yaml", tmp_path / "requests.jsonl",
                      plugins=[journal_plugin(journal)], classifiers=[journal_classifier(journal)])
    router = await spawn(conf, "--processes", "2").start()
    await router.wait_for("starting (request log:", count=2)
    router.send(signal.SIGHUP)
    await router.wait_for("config reloaded", count=2)
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    lives = lifetimes(read_journal(journal))
    pids = {instance.split("/")[0] for instance in lives}
    assert len(pids) == 2 and str(router.proc.pid) not in pids  # the parent builds none
    per_pid = defaultdict(list)
    for event, name, instance in read_journal(journal):
        if event == "setup":
            per_pid[instance.split("/")[0]].append(name)
    # In each worker: the classifier and the plugin, at start and again at the reload.
    assert list(per_pid.values()) == [["JournalClassifier", "journal"] * 2] * 2


@pytest.mark.gen_test(timeout=90)
async def test_a_stop_during_a_reload_closes_what_the_reload_set_up(spawn, tmp_path):
    journal, log_path = tmp_path / "journal", tmp_path / "requests.jsonl"
    conf = write_conf(tmp_path / "router.yaml", log_path, plugins=[journal_plugin(journal)])
    router = await spawn(conf).start()
    write_conf(conf, log_path, plugins=[journal_plugin(journal), journal_plugin(journal, hang="setup")])
    router.send(signal.SIGHUP)
    await poll(lambda: len(read_journal(journal)) == 2, "the reload to set its first plugin up")
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    assert "config reloaded" not in router.output()
    assert list(lifetimes(read_journal(journal)).values()) == [["setup", "close"]] * 2
