"""Plugins: the public ``BasePlugin``/``Flow`` API, the built-ins, and the pipeline
that runs them (``plugins.pipeline``)."""

from __future__ import annotations

from .base import HOOKS, BasePlugin, Flow
from .builtin import BUILTIN

__all__ = ["BUILTIN", "HOOKS", "BasePlugin", "Flow"]
