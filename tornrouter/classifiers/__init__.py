"""Classifiers tag a request so that routes can match on tags.

``BaseClassifier`` is the public interface; ``BUILTIN`` maps config names to the
built-ins; ``Classifiers`` runs a configured list of them.
"""

from __future__ import annotations

from ..canonical import ChatRequest
from ..errors import ClassifierFailed
from .base import BaseClassifier, ClassifierSettings
from .builtin import BUILTIN

__all__ = ["BUILTIN", "BaseClassifier", "ClassifierSettings", "Classifiers"]


class Classifiers:
    """The configured classifiers, run in order on every request."""

    def __init__(self, classifiers: list[BaseClassifier]) -> None:
        self.classifiers = classifiers

    async def classify(self, request: ChatRequest) -> dict[str, str]:
        """tag -> the name of the first classifier that set it.  A classifier that
        raises fails the request (``ClassifierFailed``, 500), as a Start hook
        does: routing without a tag it could not tell (``private``, say) could
        send the request where it must not go."""
        tags: dict[str, str] = {}
        for classifier in self.classifiers:
            try:
                found = [str(tag) for tag in await classifier.classify(request)]
            except Exception as exc:
                raise ClassifierFailed(classifier.name, exc) from exc
            for tag in found:
                tags.setdefault(tag, classifier.name)
        return tags
