"""Pick the torch device for a replica and cap its share of GPU memory.

`num_gpus: 0.25` in Ray only packs replicas onto a GPU; it does not isolate
memory, so each replica also caps its own allocator to the same fraction.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def select_device(
    preference: str = "auto", gpu_memory_fraction: float | None = None
) -> torch.device:
    """Return `cuda` when asked for (or `auto`) and present, else `cpu`.

    With CUDA and a fraction, `torch.cuda.set_per_process_memory_fraction` caps this
    process to that share of the device, matching the replica's `num_gpus`.
    """
    import torch

    if preference not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    use_cuda = preference != "cpu" and torch.cuda.is_available()
    if preference == "cuda" and not use_cuda:
        # A GPU config on a machine with none: fall back rather than refuse to start.
        use_cuda = False
    if not use_cuda:
        return torch.device("cpu")
    if gpu_memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(float(gpu_memory_fraction), 0)
    return torch.device("cuda", 0)


def visible_gpus() -> str:
    """The GPUs Ray assigned this process (empty string when none)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")
