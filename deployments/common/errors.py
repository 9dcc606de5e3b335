"""The one error type model code raises for bad caller input.

The ingress maps it to a 4xx (sync routes) or a FAILED job carrying the message;
any other exception is the server's own fault.
"""

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


class InputError(ValueError):
    """The caller's input is invalid; the message says what and why."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def parse_input(model: type[M], data: object) -> M:
    """Validate an endpoint's input, turning pydantic's error into an InputError that
    names each bad field."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InputError(f"input must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"invalid input: {problems}") from None
