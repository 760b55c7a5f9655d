"""Gemini's thought signatures, kept by function call id for clients whose API
has no thinking block to bring them back in (OpenAI chat, Responses).

Gemini refuses a function-call turn sent back without the signature it came
with.  An Anthropic client returns it in its thinking block; for the others the
provider keeps it here, bounded: the oldest go first (a conversation resumed
after that many later calls reaches Gemini without the signature, and Gemini's
error says so).  One store per provider, in memory: a call answered by one
router instance and continued on another is the limit of this store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Iterator

DEFAULT_SIZE = 50_000


class SignatureStore(Mapping[str, str]):
    """A bounded map of call id -> signature, least recently stored first out."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def put(self, call_id: str, signature: str) -> None:
        self._items[call_id] = signature
        self._items.move_to_end(call_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __getitem__(self, call_id: str) -> str:
        return self._items[call_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
