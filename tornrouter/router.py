"""The model router: (requested model, tags) -> provider and the model to send.

Order, as in the seed: a ``provider,model`` name forces the provider; else the
first route whose model glob matches and whose tags are all present; else the
default; else ``NoProvider`` (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from .config import Route, RouterConfig, Target
from .errors import NoProvider

if TYPE_CHECKING:
    from .providers.base import Provider


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes and why: ``matched`` is ``forced``, ``route`` (with
    ``index`` and ``pattern``) or ``default``."""

    provider: Provider
    model: str
    matched: str
    index: int | None = None
    pattern: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.matched}
        if self.index is not None:
            out["index"] = self.index
            out["pattern"] = self.pattern
        return out


class ModelRouter:
    def __init__(self, config: RouterConfig, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self.default = config.default
        self.routes = [(i, route, re.compile(translate(route.model)), frozenset(route.tags)) for i, route in enumerate(config.routes)]

    def resolve(self, model: str, tags: dict[str, str], forced_provider: str | None = None) -> Decision:
        if forced_provider is not None:
            provider = self.providers.get(forced_provider)
            if provider is None:
                raise NoProvider(f"{forced_provider},{model}")
            return Decision(provider, model, "forced")
        for index, route, pattern, required in self.routes:
            if pattern.match(model) and required.issubset(tags):
                return self._decide(route.to, model, "route", index, route.model)
        if self.default is not None:
            return self._decide(self.default, model, "default")
        raise NoProvider(model)

    def _decide(self, target: Target, model: str, matched: str, index: int | None = None, pattern: str | None = None) -> Decision:
        return Decision(self.providers[target.provider], target.model or model, matched, index, pattern)

    def model_names(self) -> list[tuple[str, str]]:
        """(model, provider) for every concrete name a client can ask for:
        glob-free route patterns, models named in targets, providers' ``models:``."""
        seen: dict[str, str] = {}
        glob = re.compile(r"[*?\[]")
        targets: list[tuple[Target, str | None]] = [(r.to, r.model) for r in (x[1] for x in self.routes)]
        if self.default:
            targets.append((self.default, None))
        for target, pattern in targets:
            if pattern and not glob.search(pattern):
                seen.setdefault(pattern, target.provider)
            if target.model:
                seen.setdefault(target.model, target.provider)
        for name, provider in self.providers.items():
            for model in provider.config.models:
                seen.setdefault(model, name)
        return list(seen.items())


def split_forced(model: str) -> tuple[str | None, str]:
    """``'openai,gpt-4o'`` -> ``('openai', 'gpt-4o')``; a plain name -> ``(None, name)``."""
    provider, sep, rest = model.partition(",")
    return (provider, rest) if sep and provider and rest else (None, model)


__all__ = ["Decision", "ModelRouter", "Route", "split_forced"]
