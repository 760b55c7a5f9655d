"""Plugins: the public ``BasePlugin``/``Flow``/``PluginContext`` API (annotate a
hook's ``ctx`` with ``PluginContext``), the built-ins, and the pipeline that runs
them (``plugins.pipeline``)."""

from __future__ import annotations

from ..context import PluginContext
from .base import HOOKS, BasePlugin, Flow
from .builtin import BUILTIN

__all__ = ["BUILTIN", "HOOKS", "BasePlugin", "Flow", "PluginContext"]
