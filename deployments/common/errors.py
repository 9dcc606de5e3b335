"""The one error type model code raises for bad caller input.

The ingress maps it to a 4xx (sync routes) or a FAILED job carrying the message;
any other exception is the server's own fault.
"""


class InputError(ValueError):
    """The caller's input is invalid; the message says what and why."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
