"""Configuration: YAML file -> ``${ENV}`` interpolation -> marshmallow validation -> ``Config``.

``objects`` holds what the rest of the router reads (frozen dataclasses),
``schemas`` the validation of the file, ``loading`` the reading.  Every problem
is reported at once, one line each, naming its path
(``providers.openai.base_url: Not a valid URL.``), so an operator fixes a file in
one pass.  Classifier and plugin entries are resolved to their classes here too,
so ``--check`` catches a bad dotted path before anything is served.
"""

from __future__ import annotations

from .loading import load_config, parse_config
from .objects import (
    BetasConfig,
    BreakerConfig,
    CacheConfig,
    CacheRule,
    ComponentEntry,
    Config,
    KeyConfig,
    ModelLimit,
    Price,
    ProviderConfig,
    ResponsesConfig,
    Route,
    RouterConfig,
    ServerConfig,
    StateConfig,
    Target,
    Targets,
)

__all__ = [
    "BetasConfig",
    "BreakerConfig",
    "CacheConfig",
    "CacheRule",
    "ComponentEntry",
    "Config",
    "KeyConfig",
    "ModelLimit",
    "Price",
    "ProviderConfig",
    "ResponsesConfig",
    "Route",
    "RouterConfig",
    "ServerConfig",
    "StateConfig",
    "Target",
    "Targets",
    "load_config",
    "parse_config",
]
