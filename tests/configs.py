"""Router configurations the tests start from (as the YAML file would hold them).

``base_config`` is what the ``start_router`` fixture starts unless told
otherwise: the three real-API provider kinds on the fake upstream, an echo
provider, and a route to each; ``echo_only`` needs no upstream.  The failover tests build theirs from
``provider`` entries: ``every_model_to`` one target or a list of them, or
``primary_and_backup``, a primary that speaks the client's API and a backup
that speaks the other.
"""

from __future__ import annotations

from typing import Any

from tornado.testing import bind_unused_port

from tests.wire import KIND


def base_config(upstream_url: str, log_path: str, **overrides: Any) -> dict[str, Any]:
    """The three real-API providers on the fake upstream, an echo provider, and routes to each."""
    config: dict[str, Any] = {
        "server": {"dashboard": True},
        "log": {"requests": log_path},
        "providers": {
            "oai": {"kind": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-test-openai-SECRET"},
            "ant": {"kind": "anthropic", "base_url": upstream_url, "api_key": "sk-ant-test-SECRET"},
            "oresp": {"kind": "openai-responses", "base_url": upstream_url + "/v1", "api_key": "sk-test-openai-SECRET"},
            "echo": {"kind": "echo"},
        },
        "router": {
            "default": "echo",
            "routes": [
                {"model": "gpt-*", "to": "oai"},
                {"model": "claude-*", "to": "ant"},
                {"model": "to-openai", "to": "oai/gpt-4o-mini"},
                {"model": "to-anthropic", "to": "ant/claude-haiku-4-5"},
                {"model": "to-responses", "to": "oresp/gpt-5-mini"},
                {"model": "resp-*", "to": "oresp"},
            ],
        },
    }
    config.update(overrides)
    return config


def echo_only(**sections: Any) -> dict[str, Any]:
    """Every model to the echo provider: a router that needs no upstream, with
    ``sections`` (``keys=``, ``server=``, ``state=``...) added."""
    return {"providers": {"echo": {"kind": "echo"}}, "router": {"default": "echo"}, **sections}


def dead_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    sock, port = bind_unused_port()
    sock.close()
    return f"http://127.0.0.1:{port}"


def provider(kind: str, url: str, **options: Any) -> dict[str, Any]:
    """A provider of ``kind`` on the (fake) upstream at ``url``, with ``options``."""
    base_url = url + "/v1" if kind in ("openai", "openai-responses") else url
    return {"kind": kind, "base_url": base_url, "api_key": f"sk-{kind}-SECRET", **options}


def every_model_to(tmp_path, providers: dict[str, Any], to: Any, *, server: dict[str, Any] | None = None,
                   **targets: Any) -> dict[str, Any]:
    """Every model goes to ``to`` (a target or a list), with ``targets`` options (strategy...)."""
    return {
        "server": {"dashboard": False, **(server or {})},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": providers,
        "router": {"default": {"to": to, **targets}},
    }


def primary_and_backup(tmp_path, path: str, primary_url: str, backup_url: str | None, *,
                       primary_options: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
                       **targets: Any) -> dict[str, Any]:
    """``primary/model-a`` speaks the client's API (the endpoint ``path``);
    ``backup/model-b`` (when given a URL) the other one."""
    kind = KIND[path]
    other = "anthropic" if kind == "openai" else "openai"
    providers = {"primary": provider(kind, primary_url, **(primary_options or {}))}
    to: list[str] = ["primary/model-a"]
    if backup_url is not None:
        providers["backup"] = provider(other, backup_url)
        to.append("backup/model-b")
    return every_model_to(tmp_path, providers, to, server=server, **targets)
