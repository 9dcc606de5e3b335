"""The error vocabulary of model code: input errors by kind, and the helpers every layer
uses to read them.

Model code raises `InputError` (or a subclass naming its kind) for bad caller input and
never chooses an HTTP status: the HTTP boundary maps kinds to codes. Any other exception
is the server's own fault.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")


class ErrorKind(str, Enum):
    """What is wrong with an input, as the HTTP boundary needs to know it."""

    BAD_INPUT = "bad_input"      # malformed or inconsistent: fix the request
    TOO_LARGE = "too_large"      # over a configured limit: send less
    UNSUPPORTED = "unsupported"  # a media format this endpoint does not read


class InputError(ValueError):
    """The caller's input is invalid; the message says what and why."""

    kind: ErrorKind = ErrorKind.BAD_INPUT


class TooLarge(InputError):
    """The input is over a configured limit (bytes, pixels, samples, characters, ...)."""

    kind = ErrorKind.TOO_LARGE


class Unsupported(InputError):
    """The input is in a media format this endpoint does not read."""

    kind = ErrorKind.UNSUPPORTED


def cause_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions under Ray's wrappers, outermost first: a call through a
    deployment handle raises a wrapper whose `cause` is what the other replica raised (a
    pipeline's call to a model arrives wrapped twice)."""
    chain = [exc]
    while isinstance(cause := getattr(chain[-1], "cause", None), BaseException) \
            and all(cause is not seen for seen in chain):
        chain.append(cause)
    return chain


def input_error_in(exc: BaseException) -> InputError | None:
    """The caller's input error inside an exception from another replica, or None."""
    cause = cause_chain(exc)[-1]
    if not isinstance(cause, InputError):
        return None
    # Ray's wrapper may be a dynamic subclass of the error's class: rebuild a plain one.
    return _KIND_CLASSES[cause.kind](str(cause.args[0]) if cause.args else str(cause))


_KIND_CLASSES: dict[ErrorKind, type[InputError]] = {
    ErrorKind.BAD_INPUT: InputError, ErrorKind.TOO_LARGE: TooLarge,
    ErrorKind.UNSUPPORTED: Unsupported}


def describe_validation(exc: ValidationError, skip: tuple[str, ...] = ()) -> str:
    """One line naming each bad field of a pydantic error: `a.b: msg; c: msg`. Location
    parts in `skip` (e.g. FastAPI's `body`) are left out."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in skip)
        parts.append(f"{where or 'input'}: {err.get('msg')}")
    return "; ".join(parts)


def parse_input(model: type[M], data: object) -> M:
    """Validate an endpoint's input, turning pydantic's error into an InputError that
    names each bad field."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InputError(f"input must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"invalid input: {describe_validation(exc)}") from None
