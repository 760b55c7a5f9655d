"""Reading a config: YAML, ``${ENV}`` interpolation, validation, one line per problem."""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

import yaml
from marshmallow import ValidationError

from ..errors import ConfigError
from .objects import ComponentEntry, Config, KeyConfig, ProviderConfig, Route, RouterConfig, SessionsConfig, Targets
from .schemas import ConfigSchema

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str, environ: dict[str, str] | None = None) -> Config:
    """Read, interpolate and validate ``path``.  Raises ``ConfigError`` listing every problem."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(raw, environ=os.environ if environ is None else environ, source=path)


def parse_config(raw: Any, *, environ: dict[str, str], source: str = "<config>") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the top level must be a mapping"])
    problems: list[str] = []
    raw = _interpolate(raw, environ, "", problems)
    try:
        data = ConfigSchema().load(raw)
    except ValidationError as exc:
        problems.extend(_flatten(exc.messages))
        raise ConfigError(problems) from None
    config = _build(data, source, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _interpolate(node: Any, environ: dict[str, str], path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of the tree."""
    if isinstance(node, dict):
        return {k: _interpolate(v, environ, _join(path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, environ, _join(path, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return default
        return value

    return _ENV_PATTERN.sub(substitute, node)


def _build(data: dict[str, Any], source: str, problems: list[str]) -> Config:
    providers = {
        name: ProviderConfig(name=name, **{**p, "models": tuple(p["models"])}) for name, p in data["providers"].items()
    }

    def targets(entry: dict[str, Any] | None, path: str) -> Targets | None:
        if entry is None:
            return None
        for target in entry["to"]:
            if target.provider not in providers:
                problems.append(f"{path}: unknown provider '{target.provider}'")
        return Targets(entry["to"], entry["strategy"], entry["continue_on_failure"], entry["sticky"])

    r = data["router"]
    routes = tuple(
        Route(model=route["model"], tags=tuple(route["tags"]), to=targets(route, f"router.routes.{i}.to"), cache=route["cache"],
              mirror=route["mirror"])
        for i, route in enumerate(r.get("routes", []))
    )
    for i, route in enumerate(routes):
        if route.mirror is not None and route.mirror.to.provider not in providers:
            problems.append(f"router.routes.{i}.mirror.to: unknown provider '{route.mirror.to.provider}'")
    router = RouterConfig(default=targets(r.get("default"), "router.default"), routes=routes,
                          sessions=r.get("sessions", SessionsConfig()))

    from ..classifiers import BUILTIN as builtin_classifiers  # resolved lazily: they import the config types
    from ..plugins import BUILTIN as builtin_plugins

    classifiers = []
    for i, entry in enumerate(data["classifiers"]):
        settings = {k: v for k, v in entry.items() if k != "use"}
        path = f"classifiers.{i}"  # a classifier's settings are its entry's other keys
        comp = _component(entry["use"], settings, ("*",), builtin_classifiers, path, path, problems)
        if comp:
            classifiers.append(comp)
    plugins = []
    for i, entry in enumerate(data["plugins"]):
        path = f"plugins.{i}"
        comp = _component(entry["use"], entry["settings"], tuple(entry["models"]), builtin_plugins, path, f"{path}.settings", problems)
        if comp:
            plugins.append(comp)

    return Config(
        server=data["server"],
        providers=providers,
        router=router,
        classifiers=tuple(classifiers),
        plugins=tuple(plugins),
        request_log=data["log"].get("requests"),
        source=source,
        keys=_keys(data["keys"], problems),
        model_limits=tuple(data["model_limits"]),
        prices=data["prices"],
        state=data["state"],
        responses=data["responses"],
        cache=data["cache"],
        **({"log_bodies": data["log"]["bodies"]} if "bodies" in data["log"] else {}),
    )


def _keys(keys: list[KeyConfig], problems: list[str]) -> tuple[KeyConfig, ...]:
    """Key names must be unique (they name the counters), and so must the keys
    (a request must identify exactly one)."""
    names: dict[str, int] = {}
    digests: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        if key.name in names:
            problems.append(f"keys.{i}.name: '{key.name}' is already the name of keys.{names[key.name]}")
        if key.sha256 in digests:
            problems.append(f"keys.{i}.key: the same key as keys.{digests[key.sha256]}")
        names.setdefault(key.name, i)
        digests.setdefault(key.sha256, i)
    return tuple(keys)


def _component(
    use: str,
    settings: dict[str, Any],
    models: tuple[str, ...],
    builtin: dict[str, type],
    path: str,
    settings_path: str,
    problems: list[str],
) -> ComponentEntry | None:
    """Resolve ``use`` (built-in name or ``module.Class``) of the entry at
    ``path`` and validate its settings, found at ``settings_path``."""
    cls = builtin.get(use)
    if cls is None:
        module_name, _, attr = use.rpartition(".")
        if not module_name:
            problems.append(f"{path}.use: unknown built-in '{use}' (built-ins: {', '.join(sorted(builtin))})")
            return None
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{path}.use: cannot import '{use}': {exc}")
            return None
    schema = getattr(cls, "Settings", None)
    if schema is not None:
        try:
            settings = schema().load(settings)
        except ValidationError as exc:
            problems.extend(_flatten(exc.messages, settings_path))
            return None
    return ComponentEntry(use=use, cls=cls, settings=settings, models=models)


def _flatten(messages: Any, path: str = "") -> list[str]:
    """marshmallow's nested error dict -> ``['a.b: message', ...]``."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            # "_schema" is a whole-object error; "value" is how Dict fields nest theirs.
            out.extend(_flatten(value, path if key in ("_schema", "value") else _join(path, key)))
        return out
    if isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        return [f"{path}: {m}" if path else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, path)]
    return [f"{path}: {messages}"]


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
