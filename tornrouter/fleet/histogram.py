"""Latency histograms with log-spaced bins: a fixed, small array per bucket
whatever the traffic, that merges by addition and answers percentiles within
about 9 % (four bins per doubling; a value is read back as its bin's
geometric middle)."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

PER_DOUBLING = 4
DOUBLINGS = 24  # up to 2**24 ms (4.7 h): longer lands in the last bin
BINS = 1 + PER_DOUBLING * DOUBLINGS  # bin 0 holds everything under 1 ms
_ZEROS = array("I", bytes(4 * BINS))


def new() -> array:
    return array("I", _ZEROS)


def bin_of(ms: float) -> int:
    """Bin ``i >= 1`` holds ``[2**((i-1)/4), 2**(i/4))`` ms."""
    if ms < 1.0:
        return 0
    return min(BINS - 1, 1 + int(PER_DOUBLING * math.log2(ms)))


# What a bin reads back as: its geometric middle (0.5 ms for the first).
VALUES = (0.5, *(round(2 ** ((index - 0.5) / PER_DOUBLING), 1) for index in range(1, BINS)))


def percentiles(counts: array, wanted: Iterable[float]) -> list[float | None]:
    """The values at each fraction of ``wanted`` (0..1); None for an empty histogram."""
    cumulative = list(accumulate(counts))
    total = cumulative[-1]
    if total == 0:
        return [None for _ in wanted]
    return [VALUES[bisect_left(cumulative, max(1, math.ceil(p * total)))] for p in wanted]


def add_into(target: array, source: array) -> None:
    for index, count in enumerate(source):
        if count:
            target[index] += count
