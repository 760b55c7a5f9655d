"""Prices per million tokens, and what an answer cost.

The table is keyed ``provider/model``.  ``provider`` is a configured provider's
name or a provider kind (``openai``, ``anthropic``): the defaults below are
keyed by kind, so they price any provider of that kind (``openai-responses``
is priced as ``openai``: ``Provider.vendor``), and an operator's entry
for one provider's name (a proxy, a negotiated discount) wins over them.
``model`` may be a glob (``anthropic/claude-sonnet-*``).

The lookup for an answer from provider P, of kind K, with model M:

1. ``P/M``, then ``K/M``;
2. the same with M's date suffix removed (``gpt-4.1-2025-04-14`` -> ``gpt-4.1``,
   ``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``): dated snapshots are
   priced as their alias;
3. the globs, the operator's entries first, then the defaults, in order.

No price -> the cost is ``None`` (logged as such, counted as free against
budgets, and warned about once per model).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from types import MappingProxyType

from ..canonical import Usage
from ..config import Price

log = logging.getLogger("tornrouter.access")

# USD per million tokens: input, output, cache read, cache write (Anthropic's
# 5-minute cache write, 1.25 times the input price), one-hour cache write
# (twice the input price); OpenAI caches for free and bills cached input at its
# cache-read price.  List prices as published by the providers; the entries
# marked "assumed" are models newer than the published list this table was
# checked against, priced like the latest known model of their tier.  Set your
# own in the config's ``prices:`` (see the README) when they differ.
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "openai/gpt-5.5": Price(2.5, 15.0, 0.25),  # assumed
        "openai/gpt-5.4": Price(2.5, 15.0, 0.25),  # assumed
        "openai/gpt-5.4-mini": Price(0.5, 4.0, 0.05),  # assumed
        "openai/gpt-5.4-nano": Price(0.1, 0.8, 0.01),  # assumed
        "openai/gpt-5.2": Price(1.75, 14.0, 0.175),
        "openai/gpt-5.1": Price(1.25, 10.0, 0.125),
        "openai/gpt-5": Price(1.25, 10.0, 0.125),
        "openai/gpt-5-mini": Price(0.25, 2.0, 0.025),
        "openai/gpt-5-nano": Price(0.05, 0.4, 0.005),
        "openai/gpt-4.1": Price(2.0, 8.0, 0.5),
        "openai/gpt-4.1-mini": Price(0.4, 1.6, 0.1),
        "openai/gpt-4.1-nano": Price(0.1, 0.4, 0.025),
        "openai/gpt-4o": Price(2.5, 10.0, 1.25),
        "openai/gpt-4o-mini": Price(0.15, 0.6, 0.075),
        "openai/o4-mini": Price(1.1, 4.4, 0.275),
        "openai/o3": Price(2.0, 8.0, 0.5),
        "openai/o3-mini": Price(1.1, 4.4, 0.55),
        "openai/o1": Price(15.0, 60.0, 7.5),
        "anthropic/claude-opus-4-5": Price(5.0, 25.0, 0.5, 6.25, 10.0),
        "anthropic/claude-sonnet-4-5": Price(3.0, 15.0, 0.3, 3.75, 6.0),
        "anthropic/claude-haiku-4-5": Price(1.0, 5.0, 0.1, 1.25, 2.0),
        "anthropic/claude-opus-*": Price(5.0, 25.0, 0.5, 6.25, 10.0),  # assumed for newer Opus
        "anthropic/claude-sonnet-*": Price(3.0, 15.0, 0.3, 3.75, 6.0),  # assumed for newer Sonnet
        "anthropic/claude-haiku-*": Price(1.0, 5.0, 0.1, 1.25, 2.0),  # assumed for newer Haiku
        "echo/*": Price(0.0, 0.0),  # the built-in offline provider
    }
)

_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_GLOB = re.compile(r"[*?\[]")


class PriceTable:
    """The defaults overlaid with the config's ``prices:``; ``cost`` of a usage."""

    def __init__(self, overrides: Mapping[str, Price], defaults: Mapping[str, Price] = DEFAULT_PRICES) -> None:
        table = {**defaults, **overrides}
        self.exact = {k: v for k, v in table.items() if not _GLOB.search(k)}
        # Operator globs first: a config entry is more specific by intent than a default tier.
        self.globs = [(k, v) for k, v in overrides.items() if _GLOB.search(k)]
        self.globs += [(k, v) for k, v in defaults.items() if _GLOB.search(k) and k not in overrides]
        # The lookup depends only on (provider, kind, model): decide once per triple.
        self.lookup = lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, provider: str, kind: str, model: str) -> Price | None:
        names = [f"{provider}/{model}", f"{kind}/{model}"]
        undated = _DATE_SUFFIX.sub("", model)
        if undated != model:
            names += [f"{provider}/{undated}", f"{kind}/{undated}"]
        for name in names:
            if name in self.exact:
                return self.exact[name]
        for pattern, price in self.globs:
            if any(fnmatchcase(name, pattern) for name in names):
                return price
        log.warning("no price for %s/%s (kind %s): its cost is not counted; add it under prices:", provider, model, kind)
        return None

    def cost(self, provider: str, kind: str, model: str, usage: Usage) -> float | None:
        """USD for ``usage`` of ``model`` at ``provider``; None without a price."""
        price = self.lookup(provider, kind, model)
        if price is None:
            return None
        cache_read = price.input if price.cache_read is None else price.cache_read
        cache_write = price.input if price.cache_write is None else price.cache_write
        cache_write_1h = cache_write if price.cache_write_1h is None else price.cache_write_1h
        written_1h = min(usage.cache_creation_1h_tokens, usage.cache_creation_tokens)
        per_million = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_read_tokens * cache_read
            + (usage.cache_creation_tokens - written_1h) * cache_write
            + written_1h * cache_write_1h
        )
        return per_million / 1_000_000
