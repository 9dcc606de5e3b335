"""A working input of the `ipa-generation` endpoint: the API docs, the console and the
tests all use it."""

from typing import Any


def example_input() -> dict[str, Any]:
    return {"text": "Hello world", "language": "en-us"}
