"""The classifier interface: look at a request, name the tags it deserves."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod

from collections.abc import Iterable
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, fields

from ..canonical import ChatRequest
from ..components import Component


class ClassifierSettings(Schema):
    """Settings every classifier entry accepts; built-ins extend it with their own."""

    class Meta:
        unknown = RAISE

    tag = fields.String()


class BaseClassifier(Component):
    """Subclass this, override ``classify``, and name the class in the config.

    ``settings`` is the config entry without ``use`` (validated by the class's
    ``Settings`` schema when it has one).  ``self.tag`` is the tag to add: the
    entry's ``tag:`` if given, else ``default_tag``.  One instance serves every
    request, so ``classify`` must not keep per-request state on ``self``;
    what it holds for all of them is opened in ``setup`` and released in
    ``close``, as for plugins (``tornrouter.components``).  A ``classify``,
    ``setup`` or ``close`` that is not ``async def`` is refused when the class
    is defined.
    """

    default_tag: ClassVar[str] = ""
    Settings: ClassVar[type[Schema] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        classify = vars(cls).get("classify")
        if classify is not None and not inspect.iscoroutinefunction(classify):
            # Classifiers are awaited: a plain def would fail each request with a 500.
            raise TypeError(f"{cls.__qualname__}.classify must be a coroutine function: write 'async def classify(self, request)'")

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.tag: str = settings.get("tag") or self.default_tag or type(self).__name__.lower()

    @property
    def name(self) -> str:
        """How the request log names this classifier."""
        return self.default_tag or type(self).__name__

    async def classify(self, request: ChatRequest) -> Iterable[str]:
        """The tags for ``request`` (an empty iterable for none).  Runs before
        PreRouting plugins, after Start plugins; must not modify the request."""
        return ()


class TagIf(BaseClassifier, ABC):
    """A built-in whose answer is one yes/no test: adds ``self.tag`` when ``matches``."""

    Settings = ClassifierSettings

    @abstractmethod
    def matches(self, request: ChatRequest) -> bool:
        """True when ``request`` deserves the tag."""

    async def classify(self, request: ChatRequest) -> Iterable[str]:
        return (self.tag,) if self.matches(request) else ()
