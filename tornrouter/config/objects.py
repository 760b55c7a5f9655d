"""The configuration as the rest of the router sees it: frozen dataclasses.
Their defaults are also those of a key the YAML file leaves out
(``schemas.defaults_from``), so each is written here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    # What a client may take to send a request, and how many may be connected (tornrouter/server.py).
    header_timeout_s: float = 20.0  # a new connection's first request headers, from the accept
    body_timeout_s: float = 120.0  # the whole body, from the end of the headers
    idle_timeout_s: float = 75.0  # a kept-alive connection: until the next request's headers are complete
    max_connections: int = 4096
    instance: str | None = None  # this instance's name on the dashboard and in the log (default <hostname>:<port>)


@dataclass(frozen=True)
class BreakerConfig:
    """Open after ``failures`` failures within ``window_s``; probe again after ``cooldown_s``."""

    failures: int = 5
    window_s: float = 30.0
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class BetasConfig:
    """What an Anthropic-kind provider does to the ``anthropic-beta`` flags it is
    sent: ``override`` (when set) replaces the client's flags; otherwise the
    client's flags that match a glob of ``strip`` are dropped; then ``add``'s
    flags are added."""

    add: tuple[str, ...] = ()
    strip: tuple[str, ...] = ()
    override: tuple[str, ...] | None = None


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
    # A hosted tool (a Responses web search, an Anthropic code execution...) this
    # provider's API cannot run: ``drop`` it (reported lossy) or ``refuse`` the request (400).
    hosted_tools: str = "drop"
    # kind: azure -- the API version, model -> deployment, the deployment or the v1 path,
    # and an Entra ID bearer token from a command (cached token_ttl_s) or an environment variable.
    api_version: str = "2024-10-21"
    deployments: dict[str, str] = field(default_factory=dict)
    azure_path: str = "deployments"
    token_command: str | None = None
    token_env: str | None = None
    token_ttl_s: float = 300.0
    # kind: vertex (base_url defaults to the region's endpoint) and kind: bedrock.
    project: str | None = None
    region: str | None = None
    publisher: str = "anthropic"
    credentials_file: str | None = None
    profile: str | None = None  # kind: bedrock -- the AWS profile (default: the standard chain)
    role_arn: str | None = None  # kind: bedrock -- a role assumed through STS
    betas: BetasConfig | None = None  # anthropic kind: the anthropic-beta flags added, stripped or overridden


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
    sticky: bool = True  # a session stays on the target that served it (router.sessions)


@dataclass(frozen=True)
class CacheRule:
    """Response caching for the requests of a route or of a model glob
    (``tornrouter/cache``): how long an answer is kept, the largest one kept,
    and what may be cached beyond the safe default."""

    enabled: bool = True
    ttl_s: float = 3600.0
    max_entry_bytes: int = 1024 * 1024
    shared: bool = False  # every client key reads the same entries
    nondeterministic: bool = False  # cache requests that sample (temperature > 0, or unset)
    cache_tool_calls: bool = False  # cache answers that call tools
    coalesce: bool = True  # identical requests in flight at once make one upstream call


@dataclass(frozen=True)
class Route:
    model: str = "*"
    tags: tuple[str, ...] = ()
    to: Targets = Targets(())
    cache: CacheRule | None = None


@dataclass(frozen=True)
class SessionsConfig:
    """How a request names its session, for session-sticky routing: the request
    header ``header``, else the body field ``body_field`` (a dotted path in the
    client's JSON body: ``metadata.user_id``, ``prompt_cache_key``).  A session's
    target is kept ``ttl_s`` after its last request."""

    header: str | None = "X-Claude-Code-Session-Id"
    body_field: str | None = None
    ttl_s: float = 3600.0


@dataclass(frozen=True)
class RouterConfig:
    default: Targets | None = None
    routes: tuple[Route, ...] = ()
    sessions: SessionsConfig = SessionsConfig()


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
    count_tokens_rpm: int | None = None  # count_tokens requests per minute: a limit of their own


@dataclass(frozen=True)
class ModelLimit:
    """Limits shared by every request whose requested model matches ``model``
    (one set of counters per entry, whoever the caller)."""

    model: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    count_tokens_rpm: int | None = None


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cached input at ``cache_read``/``cache_write``
    (the input price when unset); input written to the cache for an hour at
    ``cache_write_1h`` (``cache_write`` when unset)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None


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
class ResponsesConfig:
    """Stored responses of the Responses API (``tornrouter.responses_store``):
    where is ``state.backend``'s (this process, or the Redis of ``state.url``)."""

    store_ttl_s: float = 30 * 86400.0  # kept this long after the response, or its conversation's latest turn
    max_bytes: int = 64 * 1024 * 1024  # in memory: the most the store holds (least recently used dropped first)


@dataclass(frozen=True)
class CacheConfig:
    """The response cache: the memory backend's bound, in bytes (entries and
    their bookkeeping), and the rules per requested-model glob (first match)
    for requests whose route has no ``cache:`` of its own.  With
    ``state.backend: redis`` the entries live in that Redis instead."""

    max_bytes: int = 64 * 1024 * 1024
    models: tuple[tuple[str, CacheRule], ...] = ()


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
    responses: ResponsesConfig = ResponsesConfig()
    cache: CacheConfig = CacheConfig()
