"""The marshmallow schemas of the YAML file.  They reject unknown keys
(``unknown = RAISE``): a human typed this file, and a misspelt key must be an
error, not a silently ignored setting.

A default is written once, on the dataclass of ``objects`` that the rest of
the router reads; ``defaults_from`` hands it to the schema field of the same
name, so a loaded section is complete all the same."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
from typing import Any, Callable, TypeVar

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, missing, post_load, validate, validates_schema

from .objects import (
    BetasConfig, BreakerConfig, CacheConfig, CacheRule, ComponentEntry, Config, KeyConfig, ModelLimit, Price,
    ProviderConfig, ResponsesConfig, Route, RouterConfig, ServerConfig, SessionsConfig, StateConfig, Target, Targets,
)

PROVIDER_KINDS = ("openai", "openai-responses", "anthropic", "echo", "gemini", "azure", "vertex", "bedrock")
HOSTED_TOOLS = ("drop", "refuse")
AZURE_PATHS = ("deployments", "v1")
VERTEX_PUBLISHERS = ("anthropic", "google")
# Kinds that need an optional extra: the module they import, and the extra's name.
KIND_EXTRAS = {"vertex": ("google.auth", "vertex"), "bedrock": ("botocore", "bedrock")}
# Kinds whose base_url follows from their region.
REGIONAL_KINDS = ("vertex", "bedrock")


S = TypeVar("S", bound=type[Schema])


def defaults_from(config_cls: type) -> Callable[[S], S]:
    """Give every optional field of the decorated schema the default of the
    ``config_cls`` field of the same name, as its ``load_default``.  A required
    field keeps none (the key must be written).  Refused, at import: a field
    with a ``load_default`` of its own (the default written twice), and a field
    defaulting to None without ``allow_none=True`` (marshmallow accepts null
    unasked only when ``load_default=None`` is passed to the field itself)."""

    def decorate(schema: S) -> S:
        for spec in dataclasses.fields(config_cls):
            field = schema._declared_fields.get(spec.name)
            if field is None or field.required or spec.default is spec.default_factory is dataclasses.MISSING:
                continue
            default = spec.default_factory if spec.default is dataclasses.MISSING else spec.default
            if field.load_default is not missing:
                raise TypeError(f"{schema.__name__}.{spec.name}: its default is written on {config_cls.__name__}")
            if default is None and not field.allow_none:
                raise TypeError(f"{schema.__name__}.{spec.name}: defaults to None, so needs allow_none=True")
            field.load_default = default
        return schema

    return decorate


class _Strict(Schema):
    class Meta:
        unknown = RAISE


@defaults_from(ServerConfig)
class ServerSchema(_Strict):
    host = fields.String()
    port = fields.Integer(validate=validate.Range(0, 65535))
    dashboard = fields.Boolean()
    max_body_bytes = fields.Integer(validate=validate.Range(min=1024))
    max_clients = fields.Integer(validate=validate.Range(min=1))
    max_response_bytes = fields.Integer(validate=validate.Range(min=1024))
    max_in_flight = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    drain_s = fields.Float(validate=validate.Range(min=0))
    admin_key = fields.String(allow_none=True, validate=validate.Length(min=1, error="must not be empty"))
    header_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    body_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    idle_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    max_connections = fields.Integer(validate=validate.Range(min=1))
    instance = fields.String(allow_none=True, validate=validate.Length(min=1, error="must not be empty"))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ServerConfig:
        return ServerConfig(**data)


_POSITIVE = validate.Range(min=0, min_inclusive=False)


@defaults_from(BreakerConfig)
class BreakerSchema(_Strict):
    failures = fields.Integer(validate=validate.Range(min=1))
    window_s = fields.Float(validate=_POSITIVE)
    cooldown_s = fields.Float(validate=_POSITIVE)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> BreakerConfig:
        return BreakerConfig(**data)


_FLAG = validate.Regexp(r"^[^\s,]+$", error="one beta flag: no spaces or commas")


@defaults_from(BetasConfig)
class BetasSchema(_Strict):
    add = fields.List(fields.String(validate=_FLAG))
    strip = fields.List(fields.String(validate=_FLAG))
    override = fields.List(fields.String(validate=_FLAG), allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> BetasConfig:
        override = data["override"]
        return BetasConfig(tuple(data["add"]), tuple(data["strip"]), None if override is None else tuple(override))


class LogSchema(_Strict):
    requests = fields.String(allow_none=True)


@defaults_from(ProviderConfig)
class ProviderSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(PROVIDER_KINDS))
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key = fields.String(allow_none=True)
    timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    connect_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    first_byte_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    idle_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    default_max_tokens = fields.Integer(validate=validate.Range(min=1))
    anthropic_version = fields.String()
    models = fields.List(fields.String())
    retries = fields.Integer(validate=validate.Range(min=0, max=10))
    retry_backoff_s = fields.Float(validate=validate.Range(min=0))
    retry_backoff_max_s = fields.Float(validate=validate.Range(min=0))
    retry_after_max_s = fields.Float(validate=validate.Range(min=0))
    breaker = fields.Nested(BreakerSchema, allow_none=True)
    max_concurrent = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    max_queue = fields.Integer(validate=validate.Range(min=0))
    hosted_tools = fields.String(validate=validate.OneOf(HOSTED_TOOLS))
    api_version = fields.String()
    deployments = fields.Dict(keys=fields.String(), values=fields.String())
    azure_path = fields.String(validate=validate.OneOf(AZURE_PATHS))
    token_command = fields.String(allow_none=True)
    token_env = fields.String(allow_none=True)
    token_ttl_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    project = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    publisher = fields.String(validate=validate.OneOf(VERTEX_PUBLISHERS))
    credentials_file = fields.String(allow_none=True)
    profile = fields.String(allow_none=True)
    role_arn = fields.String(allow_none=True)
    betas = fields.Nested(BetasSchema, allow_none=True)

    @validates_schema
    def needs_url(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") not in ("echo", *REGIONAL_KINDS) and not data.get("base_url"):
            raise ValidationError("required for this kind", "base_url")

    @validates_schema
    def regional(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") in REGIONAL_KINDS and not data.get("region"):
            raise ValidationError("required for this kind", "region")
        if data.get("kind") == "vertex" and not data.get("project"):
            raise ValidationError("required for this kind", "project")

    @validates_schema
    def extra_installed(self, data: dict[str, Any], **kwargs: Any) -> None:
        """A kind whose optional dependency is missing is refused at start, naming the extra."""
        need = KIND_EXTRAS.get(data.get("kind"))
        if need is None:
            return
        try:
            importlib.import_module(need[0])
        except ImportError:
            raise ValidationError(
                f"kind {data['kind']} needs the '{need[1]}' extra, which is not installed: "
                f"pip install 'tornrouter[{need[1]}]'", "kind") from None

    @validates_schema
    def azure_auth(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") == "azure" and data.get("token_command") and data.get("token_env"):
            raise ValidationError("give token_command or token_env, not both", "token_env")

    @validates_schema
    def betas_for_anthropic(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("betas") is not None and data.get("kind") != "anthropic":
            raise ValidationError("only for kind anthropic (beta flags are Anthropic's)", "betas")


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


@defaults_from(Targets)
class TargetsSchema(_Strict):
    to = TargetsField(required=True)
    strategy = fields.String(validate=validate.OneOf(STRATEGIES))
    continue_on_failure = fields.Boolean()
    sticky = fields.Boolean()


@defaults_from(CacheRule)
class CacheRuleSchema(_Strict):
    enabled = fields.Boolean()
    ttl_s = fields.Float(validate=_POSITIVE)
    max_entry_bytes = fields.Integer(validate=validate.Range(min=1))
    shared = fields.Boolean()
    nondeterministic = fields.Boolean()
    cache_tool_calls = fields.Boolean()
    coalesce = fields.Boolean()

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> CacheRule:
        return CacheRule(**data)


class CacheModelRuleSchema(CacheRuleSchema):
    """A ``cache.models`` entry: a requested-model glob and its rule."""

    model = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> tuple[str, CacheRule]:
        model = data.pop("model")
        return model, CacheRule(**data)


@defaults_from(CacheConfig)
class CacheSchema(_Strict):
    max_bytes = fields.Integer(validate=validate.Range(min=4096))
    models = fields.List(fields.Nested(CacheModelRuleSchema))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> CacheConfig:
        return CacheConfig(max_bytes=data["max_bytes"], models=tuple(data["models"]))


@defaults_from(Route)
class RouteSchema(TargetsSchema):
    model = fields.String()
    tags = fields.List(fields.String())
    cache = fields.Nested(CacheRuleSchema, allow_none=True)


class DefaultField(fields.Field):
    """``default:``: a target, a list of targets, or ``{to, strategy, continue_on_failure, sticky}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        return TargetsSchema().load(value if isinstance(value, dict) else {"to": value})


@defaults_from(SessionsConfig)
class SessionsSchema(_Strict):
    header = fields.String(allow_none=True, validate=validate.Regexp(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", error="not a header name"))
    body_field = fields.String(allow_none=True, validate=validate.Regexp(r"^[^.\s]+(\.[^.\s]+)*$", error="expected a dotted path: metadata.user_id"))
    ttl_s = fields.Float(validate=_POSITIVE)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> SessionsConfig:
        return SessionsConfig(**data)


@defaults_from(RouterConfig)
class RouterSchema(_Strict):
    default = DefaultField(allow_none=True)
    routes = fields.List(fields.Nested(RouteSchema))
    sessions = fields.Nested(SessionsSchema)


class ClassifierEntrySchema(Schema):
    """``use`` plus the classifier's own settings, which its class validates."""

    class Meta:
        unknown = INCLUDE

    use = fields.String(required=True)


@defaults_from(ComponentEntry)
class PluginEntrySchema(_Strict):
    use = fields.String(required=True)
    models = fields.List(fields.String())
    settings = fields.Dict(keys=fields.String(), load_default=dict)


# --- access schemas ---

_COUNT = validate.Range(min=1)
_NAME = validate.Regexp(r"^[A-Za-z0-9_.@-]+$", error="use letters, digits and _ . @ - only")


@defaults_from(KeyConfig)
class KeySchema(_Strict):
    name = fields.String(required=True, validate=_NAME)
    key = fields.String(load_default=None, validate=validate.Length(min=1, error="must not be empty"))
    key_sha256 = fields.String(
        load_default=None, validate=validate.Regexp(r"^[0-9a-fA-F]{64}$", error="expected 64 hex digits (sha256sum of the key)")
    )
    models = fields.List(fields.String(), validate=validate.Length(min=1, error="list at least one model glob ('*' for all)"))
    rpm = fields.Integer(allow_none=True, validate=_COUNT)
    tpm = fields.Integer(allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(allow_none=True, validate=_COUNT)
    budget_usd_per_day = fields.Float(allow_none=True, validate=validate.Range(min=0))
    budget_usd_per_month = fields.Float(allow_none=True, validate=validate.Range(min=0))
    count_tokens_rpm = fields.Integer(allow_none=True, validate=_COUNT)

    @validates_schema
    def one_secret(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("key") is None) == (data.get("key_sha256") is None):
            raise ValidationError("give exactly one of key and key_sha256", "key")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> KeyConfig:
        key, hexdigest = data.pop("key"), data.pop("key_sha256")
        digest = hashlib.sha256(key.encode()).digest() if key is not None else bytes.fromhex(hexdigest)
        return KeyConfig(sha256=digest, **{**data, "models": tuple(data["models"])})


@defaults_from(ModelLimit)
class ModelLimitSchema(_Strict):
    model = fields.String(required=True)
    rpm = fields.Integer(allow_none=True, validate=_COUNT)
    tpm = fields.Integer(allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(allow_none=True, validate=_COUNT)
    count_tokens_rpm = fields.Integer(allow_none=True, validate=_COUNT)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ModelLimit:
        return ModelLimit(**data)


@defaults_from(Price)
class PriceSchema(_Strict):
    input = fields.Float(required=True, validate=validate.Range(min=0))
    output = fields.Float(required=True, validate=validate.Range(min=0))
    cache_read = fields.Float(allow_none=True, validate=validate.Range(min=0))
    cache_write = fields.Float(allow_none=True, validate=validate.Range(min=0))
    cache_write_1h = fields.Float(allow_none=True, validate=validate.Range(min=0))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Price:
        return Price(**data)


STATE_BACKENDS = ("memory", "redis")


@defaults_from(StateConfig)
class StateSchema(_Strict):
    backend = fields.String(validate=validate.OneOf(STATE_BACKENDS))
    url = fields.String(allow_none=True)
    on_error = fields.String(validate=validate.OneOf(("fail_open", "fail_closed")))
    timeout_s = fields.Float(validate=_POSITIVE)
    prefix = fields.String()
    lease_s = fields.Float(validate=_POSITIVE)

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


@defaults_from(ResponsesConfig)
class ResponsesSchema(_Strict):
    store_ttl_s = fields.Float(validate=_POSITIVE)
    max_bytes = fields.Integer(validate=validate.Range(min=1024))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ResponsesConfig:
        return ResponsesConfig(**data)


@defaults_from(Config)
class ConfigSchema(_Strict):
    server = fields.Nested(ServerSchema, load_default=lambda: ServerConfig())
    log = fields.Nested(LogSchema, load_default=dict)
    providers = fields.Dict(keys=fields.String(), values=fields.Nested(ProviderSchema), required=True)
    router = fields.Nested(RouterSchema, load_default=dict)
    classifiers = fields.List(fields.Nested(ClassifierEntrySchema))
    plugins = fields.List(fields.Nested(PluginEntrySchema))
    keys = fields.List(fields.Nested(KeySchema))
    model_limits = fields.List(fields.Nested(ModelLimitSchema))
    prices = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[^/\s]+/\S+$", error="expected 'provider/model'")),
        values=fields.Nested(PriceSchema),
    )
    state = fields.Nested(StateSchema)
    responses = fields.Nested(ResponsesSchema)
    cache = fields.Nested(CacheSchema)
