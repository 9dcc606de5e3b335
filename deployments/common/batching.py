"""Batched model calls: per-request errors (one bad request must not fail its batch mates)
and the batch knobs every batching deployment sets the same way.

A `@serve.batch` method that raises fails every request of the batch. These helpers let
the method return each request's own result or exception instead; the caller raises
its own exception with `raise_if_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

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


#: the user_config keys of a deployment's `@serve.batch` method
BATCH_KNOBS = frozenset({"max_batch_size", "batch_wait_timeout_s"})


def apply_batch_knobs(method: Any, user_config: Mapping[str, Any]) -> dict[str, Any]:
    """Set the knobs of `method` (a bound `@serve.batch` method) named in a deployment's
    `user_config`, checked before either is set; the knobs now in force.

    Every batching deployment takes its batch knobs through here, from `reconfigure`: the
    one place they are set, at start (Serve calls `reconfigure` with the user_config
    before the first request) and on every `serve deploy` that changes them.
    """
    size = user_config.get("max_batch_size", method._get_max_batch_size())
    wait = user_config.get("batch_wait_timeout_s", method._get_batch_wait_timeout_s())
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"max_batch_size must be a positive integer, got {size!r}")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 60:
        raise ValueError(f"batch_wait_timeout_s must be 0 to 60 seconds, got {wait!r}")
    method.set_max_batch_size(size)
    method.set_batch_wait_timeout_s(float(wait))
    return {"max_batch_size": size, "batch_wait_timeout_s": float(wait)}
