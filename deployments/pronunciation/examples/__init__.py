"""A working input of the `pronunciation-assessment` endpoint: a Festival (slt voice)
recording of the sentence it is assessed against. The API docs, the console and the tests
all use it."""

import base64
import importlib.resources
from functools import cache
from typing import Any

SENTENCE = "the quick brown fox jumps over the lazy dog"


@cache
def example_input() -> dict[str, Any]:
    audio = importlib.resources.files(__name__).joinpath("fox.wav").read_bytes()
    return {"audio": base64.b64encode(audio).decode(), "text": SENTENCE, "language": "en-us"}
