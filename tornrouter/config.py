"""Configuration: YAML file -> ``${ENV}`` interpolation -> marshmallow validation -> ``Config``.

Schemas here reject unknown keys (``unknown = RAISE``): a human typed this file,
and a misspelt key must be an error, not a silently ignored setting.  Every
problem is reported at once, one line each, naming its path
(``providers.openai.base_url: Not a valid URL.``), so an operator fixes a file in
one pass.  Classifier and plugin entries are resolved to their classes here too,
so ``--check`` catches a bad dotted path before anything is served.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from .errors import ConfigError

PROVIDER_KINDS = ("openai", "anthropic", "echo")
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# --- config objects -------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    dashboard: bool = True
    max_body_bytes: int = 20 * 1024 * 1024
    max_clients: int = 100
    max_response_bytes: int = 64 * 1024 * 1024  # an upstream answer (streamed or not) larger than this fails
    max_in_flight: int | None = None
    drain_s: float = 30.0
    admin_key: str | None = field(default=None, repr=False)  # guards the dashboard, /metrics, /v1/usage


@dataclass(frozen=True)
class BreakerConfig:
    """Open after ``failures`` failures within ``window_s``; probe again after ``cooldown_s``."""

    failures: int = 5
    window_s: float = 30.0
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str = ""
    api_key: str | None = None
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    headers: dict[str, str] = field(default_factory=dict)
    default_max_tokens: int = 4096
    anthropic_version: str = "2023-06-01"
    models: tuple[str, ...] = ()
    retries: int = 0
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 8.0
    retry_after_max_s: float = 30.0
    breaker: BreakerConfig | None = None
    max_concurrent: int | None = None
    max_queue: int = 100


@dataclass(frozen=True)
class Target:
    """``provider`` (keep the requested model) or ``provider/model`` (rewrite it);
    ``weight`` counts for the ``loadbalance`` strategy."""

    provider: str
    model: str | None = None
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str, weight: float = 1.0) -> Target:
        provider, _, model = text.partition("/")
        return cls(provider, model or None, weight)


@dataclass(frozen=True)
class Targets:
    """What a route (or the default) sends to: one target or several, tried in
    order (``fallback``) or spread by weight (``loadbalance``)."""

    targets: tuple[Target, ...]
    strategy: str = "fallback"
    continue_on_failure: bool = False


@dataclass(frozen=True)
class Route:
    model: str = "*"
    tags: tuple[str, ...] = ()
    to: Targets = Targets(())


@dataclass(frozen=True)
class RouterConfig:
    default: Targets | None = None
    routes: tuple[Route, ...] = ()


# --- access: client keys, limits, prices, shared state (tornrouter/access) ---


@dataclass(frozen=True)
class KeyConfig:
    """One router API key.  Only its SHA-256 digest is kept: the key itself
    never reaches a log line, an error or a repr."""

    name: str
    sha256: bytes = field(repr=False)
    models: tuple[str, ...] = ("*",)
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    budget_usd_per_day: float | None = None
    budget_usd_per_month: float | None = None


@dataclass(frozen=True)
class ModelLimit:
    """Limits shared by every request whose requested model matches ``model``
    (one set of counters per entry, whoever the caller)."""

    model: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cached input at ``cache_read``/``cache_write``
    (the input price when unset)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class StateConfig:
    """Where limits, budgets and usage totals live: this process (``memory``)
    or a Redis shared by several instances."""

    backend: str = "memory"
    url: str | None = field(default=None, repr=False)  # may hold a password
    on_error: str = "fail_open"
    timeout_s: float = 0.5
    prefix: str = "tornrouter:"
    lease_s: float = 900.0  # a concurrency slot its instance never gave back expires after this


@dataclass(frozen=True)
class ComponentEntry:
    """One classifier or plugin entry: the class it names and its settings."""

    use: str
    cls: type
    settings: dict[str, Any]
    models: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    providers: dict[str, ProviderConfig]
    router: RouterConfig
    classifiers: tuple[ComponentEntry, ...] = ()
    plugins: tuple[ComponentEntry, ...] = ()
    request_log: str | None = None
    source: str = "<config>"
    keys: tuple[KeyConfig, ...] = ()
    model_limits: tuple[ModelLimit, ...] = ()
    prices: dict[str, Price] = field(default_factory=dict)
    state: StateConfig = StateConfig()


# --- schemas ----------------------------------------------------------------------


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServerSchema(_Strict):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(0, 65535))
    dashboard = fields.Boolean(load_default=True)
    max_body_bytes = fields.Integer(load_default=20 * 1024 * 1024, validate=validate.Range(min=1024))
    max_clients = fields.Integer(load_default=100, validate=validate.Range(min=1))
    max_response_bytes = fields.Integer(load_default=64 * 1024 * 1024, validate=validate.Range(min=1024))
    max_in_flight = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    drain_s = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    admin_key = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, error="must not be empty"))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ServerConfig:
        return ServerConfig(**data)


_POSITIVE = validate.Range(min=0, min_inclusive=False)


class BreakerSchema(_Strict):
    failures = fields.Integer(load_default=5, validate=validate.Range(min=1))
    window_s = fields.Float(load_default=30.0, validate=_POSITIVE)
    cooldown_s = fields.Float(load_default=30.0, validate=_POSITIVE)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> BreakerConfig:
        return BreakerConfig(**data)


class LogSchema(_Strict):
    requests = fields.String(load_default=None, allow_none=True)


class ProviderSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(PROVIDER_KINDS))
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key = fields.String(load_default=None, allow_none=True)
    timeout_s = fields.Float(load_default=600.0, validate=validate.Range(min=0, min_inclusive=False))
    connect_timeout_s = fields.Float(load_default=10.0, validate=validate.Range(min=0, min_inclusive=False))
    first_byte_timeout_s = fields.Float(load_default=120.0, validate=validate.Range(min=0, min_inclusive=False))
    idle_timeout_s = fields.Float(load_default=120.0, validate=validate.Range(min=0, min_inclusive=False))
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    default_max_tokens = fields.Integer(load_default=4096, validate=validate.Range(min=1))
    anthropic_version = fields.String(load_default="2023-06-01")
    models = fields.List(fields.String(), load_default=list)
    retries = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10))
    retry_backoff_s = fields.Float(load_default=0.5, validate=validate.Range(min=0))
    retry_backoff_max_s = fields.Float(load_default=8.0, validate=validate.Range(min=0))
    retry_after_max_s = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    breaker = fields.Nested(BreakerSchema, load_default=None, allow_none=True)
    max_concurrent = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    max_queue = fields.Integer(load_default=100, validate=validate.Range(min=0))

    @validates_schema
    def needs_url(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") in ("openai", "anthropic") and not data.get("base_url"):
            raise ValidationError("required for this kind", "base_url")


_TARGET_TEXT = re.compile(r"^[^/\s]+(/\S+)?$")
STRATEGIES = ("fallback", "loadbalance")


class TargetsField(fields.Field):
    """``to:``: ``"provider[/model]"``, or a list of those and of
    ``{target: "provider[/model]", weight: N}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[Target, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError("needs at least one target")
        return tuple(self._target(item) for item in items)

    @staticmethod
    def _target(item: Any) -> Target:
        weight: Any = 1.0
        if isinstance(item, dict):
            unknown = set(item) - {"target", "weight"}
            if unknown or "target" not in item:
                raise ValidationError("expected {target: 'provider[/model]', weight: N}")
            item, weight = item["target"], item.get("weight", 1.0)
        if not isinstance(item, str) or not _TARGET_TEXT.match(item):
            raise ValidationError(f"expected 'provider' or 'provider/model', got {item!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ValidationError(f"weight must be a positive number, got {weight!r}")
        return Target.parse(item, float(weight))


class TargetsSchema(_Strict):
    to = TargetsField(required=True)
    strategy = fields.String(load_default="fallback", validate=validate.OneOf(STRATEGIES))
    continue_on_failure = fields.Boolean(load_default=False)


class RouteSchema(TargetsSchema):
    model = fields.String(load_default="*")
    tags = fields.List(fields.String(), load_default=list)


class DefaultField(fields.Field):
    """``default:``: a target, a list of targets, or ``{to, strategy, continue_on_failure}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        return TargetsSchema().load(value if isinstance(value, dict) else {"to": value})


class RouterSchema(_Strict):
    default = DefaultField(load_default=None, allow_none=True)
    routes = fields.List(fields.Nested(RouteSchema), load_default=list)


class ClassifierEntrySchema(Schema):
    """``use`` plus the classifier's own settings, which its class validates."""

    class Meta:
        unknown = INCLUDE

    use = fields.String(required=True)


class PluginEntrySchema(_Strict):
    use = fields.String(required=True)
    models = fields.List(fields.String(), load_default=lambda: ["*"])
    settings = fields.Dict(keys=fields.String(), load_default=dict)


# --- access schemas ---

_COUNT = validate.Range(min=1)
_NAME = validate.Regexp(r"^[A-Za-z0-9_.@-]+$", error="use letters, digits and _ . @ - only")


class KeySchema(_Strict):
    name = fields.String(required=True, validate=_NAME)
    key = fields.String(load_default=None, validate=validate.Length(min=1, error="must not be empty"))
    key_sha256 = fields.String(
        load_default=None, validate=validate.Regexp(r"^[0-9a-fA-F]{64}$", error="expected 64 hex digits (sha256sum of the key)")
    )
    models = fields.List(fields.String(), load_default=lambda: ["*"], validate=validate.Length(min=1, error="list at least one model glob ('*' for all)"))
    rpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    tpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    budget_usd_per_day = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    budget_usd_per_month = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def one_secret(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("key") is None) == (data.get("key_sha256") is None):
            raise ValidationError("give exactly one of key and key_sha256", "key")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> KeyConfig:
        key, hexdigest = data.pop("key"), data.pop("key_sha256")
        digest = hashlib.sha256(key.encode()).digest() if key is not None else bytes.fromhex(hexdigest)
        return KeyConfig(sha256=digest, **{**data, "models": tuple(data["models"])})


class ModelLimitSchema(_Strict):
    model = fields.String(required=True)
    rpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    tpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ModelLimit:
        return ModelLimit(**data)


class PriceSchema(_Strict):
    input = fields.Float(required=True, validate=validate.Range(min=0))
    output = fields.Float(required=True, validate=validate.Range(min=0))
    cache_read = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    cache_write = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Price:
        return Price(**data)


STATE_BACKENDS = ("memory", "redis")


class StateSchema(_Strict):
    backend = fields.String(load_default="memory", validate=validate.OneOf(STATE_BACKENDS))
    url = fields.String(load_default=None, allow_none=True)
    on_error = fields.String(load_default="fail_open", validate=validate.OneOf(("fail_open", "fail_closed")))
    timeout_s = fields.Float(load_default=0.5, validate=_POSITIVE)
    prefix = fields.String(load_default="tornrouter:")
    lease_s = fields.Float(load_default=900.0, validate=_POSITIVE)

    @validates_schema
    def url_for_redis(self, data: dict[str, Any], **kwargs: Any) -> None:
        url = data.get("url")
        if data.get("backend") == "redis" and not url:
            raise ValidationError("required for backend redis", "url")
        if data.get("backend") == "memory" and url:
            raise ValidationError("only for backend redis", "url")
        if url and not re.match(r"^(redis|rediss|unix)://", url):
            raise ValidationError("expected a redis://, rediss:// or unix:// URL", "url")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> StateConfig:
        return StateConfig(**data)


class ConfigSchema(_Strict):
    server = fields.Nested(ServerSchema, load_default=lambda: ServerConfig())
    log = fields.Nested(LogSchema, load_default=dict)
    providers = fields.Dict(keys=fields.String(), values=fields.Nested(ProviderSchema), required=True)
    router = fields.Nested(RouterSchema, load_default=dict)
    classifiers = fields.List(fields.Nested(ClassifierEntrySchema), load_default=list)
    plugins = fields.List(fields.Nested(PluginEntrySchema), load_default=list)
    keys = fields.List(fields.Nested(KeySchema), load_default=list)
    model_limits = fields.List(fields.Nested(ModelLimitSchema), load_default=list)
    prices = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[^/\s]+/\S+$", error="expected 'provider/model'")),
        values=fields.Nested(PriceSchema),
        load_default=dict,
    )
    state = fields.Nested(StateSchema, load_default=lambda: StateConfig())


# --- loading ----------------------------------------------------------------------


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
        return Targets(entry["to"], entry["strategy"], entry["continue_on_failure"])

    r = data["router"]
    routes = tuple(
        Route(model=route["model"], tags=tuple(route["tags"]), to=targets(route, f"router.routes.{i}.to"))
        for i, route in enumerate(r.get("routes", []))
    )
    router = RouterConfig(default=targets(r.get("default"), "router.default"), routes=routes)

    from .classifiers import BUILTIN as builtin_classifiers  # resolved lazily: they import the config types
    from .plugins import BUILTIN as builtin_plugins

    classifiers = []
    for i, entry in enumerate(data["classifiers"]):
        settings = {k: v for k, v in entry.items() if k != "use"}
        comp = _component(entry["use"], settings, ("*",), builtin_classifiers, f"classifiers.{i}", problems)
        if comp:
            classifiers.append(comp)
    plugins = []
    for i, entry in enumerate(data["plugins"]):
        comp = _component(entry["use"], entry["settings"], tuple(entry["models"]), builtin_plugins, f"plugins.{i}", problems)
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
    use: str, settings: dict[str, Any], models: tuple[str, ...], builtin: dict[str, type], path: str, problems: list[str]
) -> ComponentEntry | None:
    """Resolve ``use`` (built-in name or ``module.Class``) and validate its settings."""
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
            problems.extend(f"{path}.{line}" for line in _flatten(exc.messages))
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
