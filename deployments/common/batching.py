"""Per-request errors in batched model calls: one bad request must not fail its batch mates.

A `@serve.batch` method that raises fails every request of the batch. These helpers let
the method return each request's own result or exception instead; the caller raises
its own exception with `raise_if_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def call_per_item(call: Callable[[list[T]], Sequence[R]], items: list[T]) -> list[R | Exception]:
    """`call(items)`, or when that raises, `call([item])` for each item: each item gets its
    own result or its own exception.

    Only a failed batch is repeated item by item, so batches without a bad item cost
    nothing more.
    """
    try:
        return list(call(items))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    results: list[R | Exception] = []
    for item in items:
        try:
            results.append(call([item])[0])
        except Exception as exc:
            results.append(exc)
    return results


def raise_if_error(result: R | Exception) -> R:
    """One request's result from a batch, or its own exception raised."""
    if isinstance(result, Exception):
        raise result
    return result
