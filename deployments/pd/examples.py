"""A working input of the `pd-segmentation` endpoint: held-out synthetic signals with
partial-discharge pulses, and their true regions. The API docs, the console and the tests
all use it. Shipped as `example.json` (the generator imports torch and scipy, which the
ingress should not pay for); `python -m deployments.pd.examples` writes it again."""

from __future__ import annotations

import importlib.resources
import json
from functools import cache
from pathlib import Path
from typing import Any

FILE = "example.json"


def generate_example() -> dict[str, Any]:
    """Two held-out signals with pulses (one decimal: they are noise of std 100, and the
    example stays small) and their true regions `[start, end)`."""
    from deployments.pd.evaluate import HELD_OUT_SEED
    from deployments.pd.synthetic import SyntheticParams, generate

    data = generate(6, seed=HELD_OUT_SEED, params=SyntheticParams(
        noise_std=(100.0, 100.0), pulse_snr=(8.0, 16.0), max_pulses=3))
    rows = [i for i, regions in enumerate(data.regions) if regions][:2]
    return {"input": {"signals": data.signals[rows].round(1).tolist()},
            "regions": [[[r.start, r.end] for r in data.regions[i]] for i in rows]}


@cache
def shipped_example() -> dict[str, Any]:
    return json.loads(importlib.resources.files("deployments.pd").joinpath(FILE).read_text())


def example_input() -> dict[str, Any]:
    return shipped_example()["input"]


def example_regions() -> list[list[tuple[int, int]]]:
    return [[(s, e) for s, e in row] for row in shipped_example()["regions"]]


if __name__ == "__main__":
    (Path(__file__).parent / FILE).write_text(json.dumps(generate_example()))
