"""Memo for pure functions of (ModelSpec, plan fields): the GUI's curves and hardware table
ask for the same model state and step work many times per edit.

Keyed by id(spec): hashing a ModelSpec walks every layer, which costs more than the lookup
saves; the spec object is kept with the value to check that the id still belongs to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Generic, Hashable, TypeVar

if TYPE_CHECKING:  # model_spec uses this cache itself
    from .model_spec import ModelSpec

T = TypeVar("T")


class SpecCache(Generic[T]):
    """Up to maxsize results by (spec, key); cleared when full (a plan's working set is small)."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._items: dict[tuple[int, Hashable], tuple[ModelSpec, T]] = {}

    def get(self, spec: ModelSpec, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached result for (spec, key), else compute() stored. Results must not be mutated."""
        full = (id(spec), key)
        hit = self._items.get(full)
        if hit is not None and hit[0] is spec:
            return hit[1]
        if len(self._items) >= self.maxsize:
            self._items.clear()
        value = compute()
        self._items[full] = (spec, value)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

