"""The model router: (requested model, tags) -> the targets to try, in order.

Which targets: a ``provider,model`` name forces the provider; else the first
route whose model glob matches and whose tags are all present; else, for a name
the config lists (``model_names``, what ``/v1/models`` shows), where it lists
it; else the default; else ``NoProvider`` (400).  So every name a client sees
in ``/v1/models`` is served under that name, even one that a route only sends
to under a tag (``{tags: [vip], to: oai/vip-model}``).  In which order, by the route's
``strategy``: ``fallback`` tries them as listed; ``loadbalance`` draws them by
weight among the healthy ones (circuit closed), the least busy first among equal
draws, and keeps the unhealthy ones as a last resort.  The draw is seeded by
the request's id: the same id under the same config and health gets the same
order, which is what lets ``tornrouter replay`` route a logged request as it
would be routed now.
"""

from __future__ import annotations

import hashlib
import random
import re
import struct
from dataclasses import dataclass, replace
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from .config import RouterConfig, Target, Targets
from .errors import NoProvider

if TYPE_CHECKING:
    from .providers.base import Provider


@dataclass(frozen=True, slots=True)
class Candidate:
    """One target, resolved: the provider and the model name to send it."""

    provider: Provider
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request may go and why: ``matched`` is ``forced``, ``route`` (with
    ``index`` and ``pattern``), ``listed`` or ``default``.  ``candidates`` are in the order
    to try them."""

    candidates: tuple[Candidate, ...]
    matched: str
    index: int | None = None
    pattern: str | None = None
    continue_on_failure: bool = False
    sticky: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.matched}
        if self.index is not None:
            out["index"] = self.index
            out["pattern"] = self.pattern
        if len(self.candidates) > 1:
            out["candidates"] = [target_name(c) for c in self.candidates]
        return out

    def first(self, candidate: Candidate) -> Decision:
        """This decision with ``candidate`` (one of its own) tried first, the others after in their order."""
        rest = tuple(c for c in self.candidates if c is not candidate)
        return replace(self, candidates=(candidate, *rest))


def target_name(candidate: Candidate) -> str:
    """``provider/model``, as the log and a session's pin name a target."""
    return f"{candidate.provider.name}/{candidate.model}"


class ModelRouter:
    def __init__(self, config: RouterConfig, providers: dict[str, Provider], rng: random.Random | None = None) -> None:
        self.providers = providers
        self.default = config.default
        self.routes = [(i, route, re.compile(translate(route.model)), frozenset(route.tags)) for i, route in enumerate(config.routes)]
        self.rng = rng or random.Random()
        self.listed = self._listed()

    def resolve(self, model: str, tags: dict[str, str], forced_provider: str | None = None, seed: str | None = None) -> Decision:
        """``seed`` (the request's id) fixes a loadbalance draw; without one it is drawn from ``rng``."""
        if forced_provider is not None:
            provider = self.providers.get(forced_provider)
            if provider is None:
                raise NoProvider(f"{forced_provider},{model}")
            return Decision((Candidate(provider, model),), "forced")
        for index, route, pattern, required in self.routes:
            if pattern.match(model) and required.issubset(tags):
                return self._decide(route.to, model, seed, "route", index, route.model)
        listed = self.listed.get(model)
        if listed is not None:
            return self._decide(listed, model, seed, "listed")
        if self.default is not None:
            return self._decide(self.default, model, seed, "default")
        raise NoProvider(model)

    def _decide(
        self, targets: Targets, model: str, seed: str | None, matched: str, index: int | None = None, pattern: str | None = None
    ) -> Decision:
        candidates = [Candidate(self.providers[t.provider], t.model or model, t.weight) for t in targets.targets]
        if targets.strategy == "loadbalance" and len(candidates) > 1:
            candidates = self._balance(candidates, seed)
        return Decision(tuple(candidates), matched, index, pattern, targets.continue_on_failure, targets.sticky)

    def _balance(self, candidates: list[Candidate], seed: str | None) -> list[Candidate]:
        """A weighted random order (Efraimidis-Spirakis keys), healthy targets first;
        among equal keys the one with fewer requests in flight comes first.  The
        uniform draws come from ``seed`` when there is one, else from ``rng``."""
        uniforms = seeded_uniforms(seed, len(candidates)) if seed is not None else [self.rng.random() for _ in candidates]
        keys = sorted(
            (not c.provider.healthy(), -(u ** (1.0 / c.weight)), c.provider.in_flight, i)
            for i, (c, u) in enumerate(zip(candidates, uniforms))
        )
        return [candidates[key[-1]] for key in keys]

    def model_names(self) -> list[tuple[str, str]]:
        """(model, provider) for every concrete name a client can ask for, in config order."""
        return [(model, targets.targets[0].provider) for model, targets in self.listed.items()]

    def _listed(self) -> dict[str, Targets]:
        """The concrete names the config gives, each with where it is served when
        no route matches it: the pattern of a route with no tags and no glob (its
        route always matches it), a model named in a target (that target), a
        provider's ``models:`` (that provider).  The first mention wins.  A
        pattern under tags is a condition, not a name, and is not listed."""
        listed: dict[str, Targets] = {}
        glob = re.compile(r"[*?\[]")
        named = [(route.to, route.model if not route.tags else None) for _, route, _, _ in self.routes]
        if self.default:
            named.append((self.default, None))
        for targets, pattern in named:
            if pattern and not glob.search(pattern):
                listed.setdefault(pattern, targets)
            for target in targets.targets:
                if target.model:
                    listed.setdefault(target.model, Targets((target,)))
        for name, provider in self.providers.items():
            for model in provider.config.models:
                listed.setdefault(model, Targets((Target(name),)))
        return listed


_WORDS = tuple(struct.Struct(f">{n}Q") for n in range(9))  # n big-endian 64-bit words


def seeded_uniforms(seed: str, count: int) -> list[float]:
    """``count`` numbers in [0, 1) fixed by ``seed``, the same in every process:
    8 bytes of a BLAKE2b digest each, one digest per 8 numbers (under a
    microsecond for a few targets, a sixth of seeding a ``random.Random``)."""
    data, out = seed.encode(), []
    for block in range(0, count, 8):
        size = min(8, count - block)
        salt = block.to_bytes(8, "big") if block else b""  # no salt is the zero salt: the first block stays cheap
        out += [n / 2**64 for n in _WORDS[size].unpack(hashlib.blake2b(data, digest_size=8 * size, salt=salt).digest())]
    return out


def split_forced(model: str) -> tuple[str | None, str]:
    """``'openai,gpt-4o'`` -> ``('openai', 'gpt-4o')``; a plain name -> ``(None, name)``."""
    provider, sep, rest = model.partition(",")
    return (provider, rest) if sep and provider and rest else (None, model)
