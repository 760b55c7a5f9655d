"""The package as a user installs it: ``python -m build``, the wheel into a new
virtualenv (no checkout on its path), then ``tornrouter init`` and
``tornrouter --conf dev.yaml`` in a directory of the user's own, driven by the
official SDKs on both endpoints, streamed and not, with the dashboard page and
its feed; and the same from ``pip install -e .``.

Slow by nature (a virtualenv and its dependencies per install), so each kind of
install is made once and every check runs against it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import anthropic
import openai
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0  # only a hang reaches it
PIP_S = 600  # a cold pip cache downloads every dependency


def run(*args: str | Path, cwd: Path, timeout: float = PIP_S) -> str:
    """Run a command with no checkout on its Python path; its output, or a failed assertion with it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build``: an sdist, and a wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    return out


def new_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin"


@pytest.fixture(scope="module", params=["wheel", "editable"])
def installed(request, dist, tmp_path_factory) -> tuple[Path, Path]:
    """The ``bin/`` of a new virtualenv with tornrouter installed from the wheel,
    or with ``pip install -e`` from the checkout; and where its code must come from."""
    home = tmp_path_factory.mktemp(f"venv-{request.param}")
    bin_dir = new_venv(home / "venv")
    if request.param == "wheel":
        run(bin_dir / "pip", "install", "-q", "--disable-pip-version-check", next(dist.glob("*.whl")), cwd=home)
        return bin_dir, home / "venv"
    run(bin_dir / "pip", "install", "-q", "--disable-pip-version-check", "-e", ROOT, cwd=home)
    return bin_dir, ROOT


def test_the_sdist_and_the_wheel_hold_the_code_and_its_data(dist):
    wheel = zipfile.ZipFile(next(dist.glob("*.whl"))).namelist()
    for name in ("tornrouter/__init__.py", "tornrouter/cli.py", "tornrouter/static/dashboard.html",
                 "tornrouter/static/vendor/uplot/uPlot.iife.min.js", "tornrouter/static/vendor/uplot/LICENSE",
                 "tornrouter/conf/dev.yaml", "tornrouter/conf/prod.yaml"):
        assert name in wheel
    sdist = tarfile.open(next(dist.glob("*.tar.gz"))).getnames()
    root = sdist[0].split("/")[0]
    for name in ("setup.py", "requirements.txt", "tornrouter/static/dashboard.html",
                 "tornrouter/static/vendor/uplot/uPlot.min.css", "tornrouter/conf/dev.yaml"):
        assert f"{root}/{name}" in sdist


class Served:
    """``tornrouter --conf dev.yaml`` from the virtualenv, in ``workdir``, on a port of its choosing."""

    def __init__(self, bin_dir: Path, workdir: Path) -> None:
        self.output_path = workdir / "router.out"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(
                [str(bin_dir / "tornrouter"), "--conf", "dev.yaml", "--port", "0"],
                cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + DEADLINE_S
        while not (found := re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.output())):
            assert self.proc.poll() is None, f"tornrouter exited {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"tornrouter did not start:\n{self.output()}"
            time.sleep(0.05)
        self.port = int(found.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE_S)
        conn.request("GET", path)
        return conn.getresponse()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(DEADLINE_S)


def test_an_installed_router_serves_the_offline_default_from_any_directory(installed, tmp_path):
    installed, code_home = installed
    # The code is the installed one (the wheel's copy, or the checkout an editable install points to).
    where = run(installed / "python", "-c", "import tornrouter; print(tornrouter.__file__)", cwd=tmp_path)
    assert Path(where.strip()).resolve().is_relative_to(code_home.resolve())
    assert run(installed / "tornrouter", "--version", cwd=tmp_path).strip() == f"tornrouter {version()}"
    assert "wrote dev.yaml" in run(installed / "tornrouter", "init", cwd=tmp_path)
    assert (tmp_path / "dev.yaml").read_bytes() == (ROOT / "conf" / "dev.yaml").read_bytes()

    router = Served(installed, tmp_path)
    try:
        oai = openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)
        ant = anthropic.Anthropic(base_url=router.url, api_key="unused", max_retries=0)
        said = oai.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "one"}])
        assert said.choices[0].message.content == "echo: one"
        streamed = oai.chat.completions.create(
            model="gpt-5.4", messages=[{"role": "user", "content": "two"}], stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: two"
        message = ant.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=[{"role": "user", "content": "three"}])
        assert message.content[0].text == "echo: three"
        with ant.messages.stream(model="claude-sonnet-5-5", max_tokens=50, messages=[{"role": "user", "content": "four"}]) as stream:
            assert stream.get_final_text() == "echo: four"

        page = router.get("/dashboard")
        assert page.status == 200 and b"<title>tornrouter" in page.read()
        chart_library = router.get("/dashboard/static/uplot/uPlot.iife.min.js?v=1.6.32")
        assert chart_library.status == 200 and chart_library.read().startswith(b"/*! https://github.com/leeoniya/uPlot")
        feed = router.get("/dashboard/events")
        assert feed.status == 200 and feed.getheader("Content-Type") == "text/event-stream"
        entries = []
        while len(entries) < 4:  # the feed opens with the latest requests
            line = feed.readline()
            assert line, "the feed ended"
            if line.startswith(b"data: "):
                entries.append(json.loads(line[6:]))
        assert [e["messages"][-1]["content"][0]["text"] for e in entries] == ["one", "two", "three", "four"]
        feed.close()
    finally:
        assert router.stop() == 0, router.output()
    logged = (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()
    assert len(logged) == 4
    assert "Traceback" not in router.output()


def version() -> str:
    return re.search(r'__version__ = "([^"]+)"', (ROOT / "tornrouter" / "__init__.py").read_text()).group(1)
