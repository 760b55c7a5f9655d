"""Classifiers tag a request so that routes can match on tags.

``BaseClassifier`` is the public interface; ``BUILTIN`` maps config names to the
built-ins; ``Classifiers`` runs a configured list of them.
"""

from __future__ import annotations

from ..canonical import ChatRequest
from .base import BaseClassifier, ClassifierSettings
from .builtin import BUILTIN

__all__ = ["BUILTIN", "BaseClassifier", "ClassifierSettings", "Classifiers"]


class Classifiers:
    """The configured classifiers, run in order on every request."""

    def __init__(self, classifiers: list[BaseClassifier]) -> None:
        self.classifiers = classifiers

    async def classify(self, request: ChatRequest) -> dict[str, str]:
        """tag -> the name of the first classifier that set it."""
        tags: dict[str, str] = {}
        for classifier in self.classifiers:
            for tag in await classifier.classify(request):
                tags.setdefault(tag, classifier.name)
        return tags
