"""Router configurations the tests start from (as the YAML file would hold them).

``base_config`` is what the ``start_router`` fixture starts unless told
otherwise: both real-API provider kinds on the fake upstream, an echo
provider, and a route to each.
"""

from __future__ import annotations

from typing import Any


def base_config(upstream_url: str, log_path: str, **overrides: Any) -> dict[str, Any]:
    """Two real-API providers on the fake upstream, an echo provider, and routes to each."""
    config: dict[str, Any] = {
        "server": {"dashboard": True},
        "log": {"requests": log_path},
        "providers": {
            "oai": {"kind": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-test-openai-SECRET"},
            "ant": {"kind": "anthropic", "base_url": upstream_url, "api_key": "sk-ant-test-SECRET"},
            "echo": {"kind": "echo"},
        },
        "router": {
            "default": "echo",
            "routes": [
                {"model": "gpt-*", "to": "oai"},
                {"model": "claude-*", "to": "ant"},
                {"model": "to-openai", "to": "oai/gpt-4o-mini"},
                {"model": "to-anthropic", "to": "ant/claude-haiku-4-5"},
            ],
        },
    }
    config.update(overrides)
    return config
