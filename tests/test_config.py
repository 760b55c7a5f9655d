"""Config loading: interpolation, validation with one line per problem, --check."""

from __future__ import annotations

import os

import pytest
from marshmallow import Schema, fields

from tests.processes import ROOT, run_cli
from tornrouter.config import ProviderConfig, ServerConfig, StateConfig, Target, Targets, load_config, parse_config
from tornrouter.config.schemas import defaults_from
from tornrouter.errors import ConfigError

def problems(raw, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ=environ or {})
    return caught.value.problems


def test_env_interpolation_with_defaults():
    raw = {
        "providers": {
            "a": {"kind": "openai", "base_url": "${BASE:-http://localhost:1234/v1}", "api_key": "${KEY}"},
        },
        "router": {"default": "a"},
    }
    config = parse_config(raw, environ={"KEY": "sk-1"})
    assert config.providers["a"].base_url == "http://localhost:1234/v1"
    assert config.providers["a"].api_key == "sk-1"
    assert config.router.default == Targets((Target("a"),))
    assert problems(raw) == ["providers.a.api_key: environment variable KEY is not set"]


def test_every_problem_is_reported_with_its_path():
    raw = {
        "server": {"port": "eighty", "colour": "blue"},
        "providers": {
            "a": {"kind": "openai", "base_url": "not a url"},
            "b": {"kind": "cohere"},
            "c": {"kind": "anthropic"},
        },
        "router": {"routes": [{"model": "x"}]},
    }
    lines = problems(raw)
    assert "server.port: Not a valid integer." in lines
    assert "server.colour: Unknown field." in lines
    assert "providers.a.base_url: Not a valid URL." in lines
    assert any(line.startswith("providers.b.kind: Must be one of") for line in lines)
    assert "providers.c.base_url: required for this kind" in lines
    assert "router.routes.0.to: Missing data for required field." in lines


def test_a_responses_provider_and_its_hosted_tools_setting():
    config = parse_config({"providers": {
        "r": {"kind": "openai-responses", "base_url": "https://api.openai.com/v1", "hosted_tools": "refuse"},
        "c": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"},
    }}, environ={})
    assert (config.providers["r"].kind, config.providers["r"].hosted_tools) == ("openai-responses", "refuse")
    assert config.providers["c"].hosted_tools == "drop"  # the default: dropped, and reported lossy
    assert sorted(problems({"providers": {"r": {"kind": "openai-responses"}, "c": {"kind": "echo", "hosted_tools": "sometimes"}}})) == [
        "providers.c.hosted_tools: Must be one of: drop, refuse.",
        "providers.r.base_url: required for this kind",
    ]


def test_an_unset_key_takes_the_dataclass_default_written_there_only():
    config = parse_config({"providers": {"p": {"kind": "echo"}}, "state": {}}, environ={})
    assert config.server == ServerConfig() and config.state == StateConfig()
    assert config.providers["p"] == ProviderConfig(name="p", kind="echo")
    with pytest.raises(TypeError, match="its default is written on ServerConfig"):

        @defaults_from(ServerConfig)
        class Twice(Schema):
            port = fields.Integer(load_default=8080)

    with pytest.raises(TypeError, match="needs allow_none=True"):

        @defaults_from(ServerConfig)
        class NoNull(Schema):
            max_in_flight = fields.Integer()


def test_references_and_components_are_checked():
    raw = {
        "providers": {"a": {"kind": "echo"}},
        "router": {"default": "nope/model", "routes": [{"model": "*", "to": "ghost"}]},
        "classifiers": [{"use": "long_context", "threshold_tokens": -5}, {"use": "keyword", "tag": "x", "patterns": ["("]}, {"use": "astrology"}],
        "plugins": [
            {"use": "no.such.Module"},
            {"use": "redact", "settings": {"pattern": "x"}},
            {"use": "system_prompt", "settings": {"text": "house rules", "position": "bogus"}},
        ],
    }
    lines = problems(raw)
    assert "router.default: unknown provider 'nope'" in lines
    assert "router.routes.0.to: unknown provider 'ghost'" in lines
    assert any(line.startswith("classifiers.0.threshold_tokens:") for line in lines)
    assert any(line.startswith("classifiers.1.patterns: not a valid regex") for line in lines)
    assert any(line.startswith("classifiers.2.use: unknown built-in 'astrology'") for line in lines)
    assert any(line.startswith("plugins.0.use: cannot import 'no.such.Module'") for line in lines)
    assert "plugins.1.settings.pattern: Unknown field." in lines
    assert "plugins.1.settings.patterns: Missing data for required field." in lines
    assert "plugins.2.settings.position: Must be one of: prepend, append." in lines


def test_shipped_configs_are_valid():
    load_config(os.path.join(ROOT, "conf", "dev.yaml"))
    env = {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}
    with pytest.raises(ConfigError):  # prod needs its keys
        load_config(os.path.join(ROOT, "conf", "prod.yaml"), environ={})
    config = load_config(os.path.join(ROOT, "conf", "prod.yaml"), environ=env)
    assert config.providers["local"].base_url == "http://127.0.0.1:11434/v1"


def test_check_flag(tmp_path):
    assert run_cli("--conf", "conf/dev.yaml", "--check").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  a: {kind: openai}\nrouter: {default: b}\n")
    result = run_cli("--conf", str(bad), "--check")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{bad}: providers.a.base_url: required for this kind"]
    assert "Traceback" not in result.stderr
    missing = run_cli("--conf", str(tmp_path / "missing.yaml"), "--check")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_prod_falls_back_to_bedrock_and_vertex_for_claude():
    config = load_config(os.path.join(ROOT, "conf", "prod.yaml"), environ={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"})
    assert [(t.provider, config.providers[t.provider].kind) for t in config.router.default.targets] == [
        ("anthropic", "anthropic"), ("bedrock", "bedrock"), ("vertex", "vertex")]
