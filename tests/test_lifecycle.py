"""The process lifecycle, on real ``python -m tornrouter`` processes: SIGTERM
drains (bounded by ``server.drain_s``), SIGHUP reloads, ``--processes N``, and
the shipped ``conf/supervisord.conf`` under a real supervisord.

Routers listen on port 0 and the test reads the port from their log.  Requests
are held in flight by the in-process fake upstream (a delayed reply, a slow
stream); where a test needs a request to be in flight when a signal lands, it
checks the router's own count of them in its log rather than trusting a delay.
Nothing is timed: waits poll with a deadline, which only a hang reaches.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.fake_upstream import Reply, openai_sse
from tests.processes import DEADLINE_S, ROOT, _accepts, _pid_alive, read_log, said, status, write_config
from tests.waiting import poll
from tests.wire import OPENAI, chat


# --- SIGTERM --------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_lets_a_request_and_a_stream_finish(spawn, upstream, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    conf = write_config(tmp_path / "router.yaml", upstream.url, log_path, routes=[{"model": "gpt-*", "to": "oai"}])
    router = await spawn(conf).start()
    words = "one two three four five six seven eight"
    feed, feed_done = router.open_feed()  # a dashboard feed is open throughout
    await poll(lambda: feed, "the feed to connect", timeout=DEADLINE_S)

    upstream.then(Reply(delay=3.0))
    plain = router.post(chat("gpt-plain", "hello"))
    await poll(lambda: len(upstream.requests) == 1, "the plain request upstream", timeout=DEADLINE_S)
    upstream.then(Reply(sse=openai_sse(words), chunk_delay=0.3))
    chunks: list[bytes] = []
    streamed = router.post(chat("gpt-stream", "hello", stream=True), streaming_callback=chunks.append)
    await poll(lambda: chunks, "the stream's first bytes", timeout=DEADLINE_S)

    router.send(signal.SIGTERM)
    out = await router.wait_for("stopping: no new connections")
    assert "for 2 request(s) in flight" in out  # the signal came while both were running (the feed is not waited for)
    assert not _accepts(router.port)  # no new connections while draining

    plain_response, stream_response = await plain, await streamed
    assert await router.exit_code() == 0
    assert plain_response.code == 200
    assert json.loads(plain_response.body)["choices"][0]["message"]["content"]
    body = b"".join(chunks).decode()
    assert stream_response.code == 200 and body.rstrip().endswith("data: [DONE]")
    assert "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in body.splitlines() if line.startswith("data: {") and json.loads(line[6:])["choices"]) == words
    entries = read_log(log_path)
    assert sorted(e["requested_model"] for e in entries) == ["gpt-plain", "gpt-stream"]
    assert all(e["status"] == 200 and not e["cancelled"] for e in entries), entries
    assert await status(feed_done) in (200, 599)  # closed once the requests were done


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_stops_within_drain_s_and_logs_what_it_cut_off(spawn, upstream, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    conf = write_config(tmp_path / "router.yaml", upstream.url, log_path, drain_s=0.5,
                        routes=[{"model": "gpt-*", "to": "oai"}])
    router = await spawn(conf).start()

    # Both would take minutes: longer than the test's deadline for the exit.
    upstream.then(Reply(delay=300))
    plain = router.post(chat("gpt-plain", "hello"))
    await poll(lambda: len(upstream.requests) == 1, "the plain request upstream", timeout=DEADLINE_S)
    sse = openai_sse("one two three")
    upstream.then(Reply(sse=[sse[0] + sse[1], *sse[2:]], chunk_delay=300))  # the first word, then a wait
    chunks: list[bytes] = []
    streamed = router.post(chat("gpt-stream", "hello", stream=True), streaming_callback=chunks.append)
    await poll(lambda: chunks, "the stream's first bytes", timeout=DEADLINE_S)

    router.send(signal.SIGTERM)
    assert "for 2 request(s) in flight" in await router.wait_for("stopping: no new connections")
    assert await router.exit_code() == 0
    assert "1 request(s) abandoned" in router.output()  # the plain one: its fetch cannot be interrupted
    assert await status(plain) == 599  # the connection was closed under each
    assert await status(streamed) == 599
    assert b"[DONE]" not in b"".join(chunks)
    entries = read_log(log_path)
    assert sorted(e["requested_model"] for e in entries) == ["gpt-plain", "gpt-stream"]
    assert all(e["status"] == 499 and e["cancelled"] for e in entries), entries


# --- SIGHUP ---------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_sighup_reloads_and_requests_in_flight_keep_their_config(spawn, upstream, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    conf = write_config(tmp_path / "router.yaml", upstream.url, log_path, routes=[{"model": "gpt-*", "to": "oai"}])
    router = await spawn(conf).start()
    before = await router.post(chat("gpt-x", "before"))
    assert before.headers["x-tornrouter-provider"] == "oai"
    feed, feed_done = router.open_feed()
    await poll(lambda: before.headers["x-request-id"] in b"".join(feed).decode(), "the feed's history", timeout=DEADLINE_S)

    upstream.then(Reply(delay=3.0))
    slow = router.post(chat("gpt-x", "slow"))
    await poll(lambda: len(upstream.requests) == 2, "the slow request upstream", timeout=DEADLINE_S)
    # gpt-* now goes to echo, and the file asks for another port, which a reload cannot do.
    write_config(conf, upstream.url, log_path, routes=[{"model": "gpt-*", "to": "echo"}], port=1)
    router.send(signal.SIGHUP)
    out = await router.wait_for("config reloaded")
    assert "(1 request(s) in flight finish on the old one)" in out
    assert f"cannot move the listening socket: still listening on 127.0.0.1:{router.port}" in out

    after = await router.post(chat("gpt-x", "after"))
    assert after.code == 200 and after.headers["x-tornrouter-provider"] == "echo"
    assert json.loads(after.body)["choices"][0]["message"]["content"] == "echo: after"
    slow_response = await slow
    assert slow_response.code == 200 and slow_response.headers["x-tornrouter-provider"] == "oai"
    assert len(upstream.requests) == 2  # "after" never went upstream
    # The feed opened before the reload carries on, on the event bus the new runtime inherited.
    await poll(lambda: after.headers["x-request-id"] in b"".join(feed).decode(), "the feed to show the new request", timeout=DEADLINE_S)

    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    await status(feed_done)
    entries = read_log(log_path)  # one file, one writer, every request once
    assert [(said(e), e["provider"]) for e in sorted(entries, key=lambda e: e["ts_ms"])] == [
        ("before", "oai"), ("after", "echo"), ("slow", "oai"),
    ]


@pytest.mark.gen_test(timeout=90)
async def test_sighup_with_a_broken_file_keeps_the_old_config(spawn, tmp_path):
    log_path = tmp_path / "requests.jsonl"
    conf = write_config(tmp_path / "router.yaml", None, log_path, routes=[{"model": "*", "to": "echo/first"}])
    router = await spawn(conf).start()

    conf.write_text(json.dumps({"server": {"port": "eighty"}, "providers": {"p": {"kind": "nope"}},
                                "router": {"default": "p"}}))
    router.send(signal.SIGHUP)
    out = await router.wait_for("reload refused: still serving the config loaded before")
    assert f"reload refused: {conf}: server.port: Not a valid integer." in out
    assert f"reload refused: {conf}: providers.p.kind: Must be one of" in out
    response = await router.post(chat("any", "still there?"))
    assert response.code == 200 and response.headers["x-tornrouter-model"] == "first"

    conf.write_text("server: [unclosed")  # not even YAML
    router.send(signal.SIGHUP)
    await router.wait_for("reload refused: still serving the config loaded before", count=2)
    assert (await router.post(chat("any", "and now?"))).headers["x-tornrouter-model"] == "first"

    write_config(conf, None, log_path, routes=[{"model": "*", "to": "echo/second"}])  # fixed
    router.send(signal.SIGHUP)
    await router.wait_for("config reloaded")
    assert (await router.post(chat("any", "fixed"))).headers["x-tornrouter-model"] == "second"
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    assert len(read_log(log_path)) == 3


# --- --processes ------------------------------------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_processes_share_the_port_with_a_log_file_each(spawn, tmp_path):
    log_path = tmp_path / "logs" / "requests.jsonl"
    conf = write_config(tmp_path / "router.yaml", None, log_path)
    router = await spawn(conf, "--processes", "2").start()
    out = await router.wait_for("starting (request log:", count=2)
    pids = {int(pid) for pid in re.findall(r"\[\d:(\d+)\]: worker \d starting", out)}
    assert len(pids) == 2
    files = [tmp_path / "logs" / "requests.0.jsonl", tmp_path / "logs" / "requests.1.jsonl"]

    # Requests on new connections until both workers have answered some.
    ids: list[str] = []

    async def both_answered() -> bool:
        responses = await asyncio.gather(*(router.post(chat("m", f"request {len(ids) + i}")) for i in range(20)))
        assert all(r.code == 200 for r in responses)
        ids.extend(r.headers["x-request-id"] for r in responses)
        return all(f.exists() and f.stat().st_size for f in files)

    await poll(both_answered, "a request answered by each worker", timeout=DEADLINE_S)

    router.send(signal.SIGHUP)  # passed on: each worker reloads
    await router.wait_for("config reloaded", count=2)
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
    assert not any(_pid_alive(pid) for pid in pids)
    logged = [entry["id"] for f in files for entry in read_log(f)]  # whole lines only
    assert sorted(logged) == sorted(ids)  # every request once, in one worker's file
    assert not log_path.exists()


# --- supervisord --------------------------------------------------------------------


@pytest.mark.gen_test(timeout=180)
async def test_shipped_supervisord_conf(tmp_path):
    """conf/supervisord.conf as shipped, its paths given by environment variables."""
    run, logs = tmp_path / "run", tmp_path / "logs"
    run.mkdir()
    logs.mkdir()
    log_path = tmp_path / "requests.jsonl"
    env = {
        **os.environ,
        "TORNROUTER_CONF": str(write_config(tmp_path / "router.yaml", None, log_path)),
        "TORNROUTER_RUN": str(run),
        "TORNROUTER_LOGS": str(logs),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    shipped = str(ROOT / "conf" / "supervisord.conf")
    minfds = int(re.search(r"^minfds=(\d+)$", (ROOT / "conf" / "supervisord.conf").read_text(), re.M)[1])
    assert minfds >= 16384  # far above the usual 1024, and server.max_connections' default with room to spare
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Started with the usual soft limit of 1024 open files, which minfds must raise.
    supervisord = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-n", "-c", shipped], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    err_log, supervisor_log = logs / "tornrouter.err.log", logs / "supervisord.log"
    client = AsyncHTTPClient(force_instance=True)

    def ctl(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", shipped, *args], env=env,
                              capture_output=True, text=True, timeout=60).stdout

    async def serving(count: int) -> int:
        """The port of the count-th router process supervisord started, once it serves."""
        await poll(lambda: err_log.exists() and err_log.read_text().count("listening on http://") >= count,
                   f"router start #{count}", timeout=DEADLINE_S)
        port = int(re.findall(r"listening on http://127\.0\.0\.1:(\d+)", err_log.read_text())[-1])
        await poll(lambda: "RUNNING" in ctl("status", "tornrouter"), "supervisord to call it RUNNING", timeout=DEADLINE_S)
        response = await client.fetch(f"http://127.0.0.1:{port}{OPENAI}", method="POST", raise_error=False,
                                      body=json.dumps(chat("m", f"hello #{count}")))
        assert response.code == 200, response.body
        return port

    try:
        await serving(1)
        limits = Path(f"/proc/{ctl('pid', 'tornrouter').strip()}/limits").read_text()
        assert int(re.search(r"^Max open files\s+(\d+)", limits, re.M)[1]) >= minfds
        # The router stopping by itself, cleanly: supervisord sees an expected exit and starts it again.
        ctl("signal", "TERM", "tornrouter")
        await poll(lambda: "exited: tornrouter (exit status 0; expected)" in supervisor_log.read_text(),
                   "supervisord to see the router exit", timeout=DEADLINE_S)
        await serving(2)
        # supervisord stopping it: SIGTERM, a drained, clean exit, and supervisord exits too.
        ctl("shutdown")
        await poll(lambda: supervisord.poll() is not None, "supervisord to exit", timeout=DEADLINE_S)
        assert supervisord.returncode == 0
        assert "stopped: tornrouter (exit status 0)" in supervisor_log.read_text()
    finally:
        client.close()
        if supervisord.poll() is None:
            supervisord.kill()
            supervisord.wait()
    assert "Traceback" not in err_log.read_text()
    assert sorted(said(e) for e in read_log(log_path)) == ["hello #1", "hello #2"]
