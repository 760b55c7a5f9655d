"""Shadow traffic: a route's mirror (``shadow``) and how its answers compare with the primary's (``compare``)."""

from __future__ import annotations

from .compare import compare
from .shadow import Mirrors, sampled

__all__ = ["Mirrors", "compare", "sampled"]
