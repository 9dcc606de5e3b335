"""Train the shipped PD checkpoint on synthetic signals, then score it on held-out ones.

Every step draws fresh signals (seed = step number, all below the held-out seeds), runs
the service's own preprocessing on them, and trains on random 1024-sample crops. The
checkpoint is a plain `state_dict` (the original's `best_model.pth` format); a JSON
sidecar records the architecture, the training run and the held-out scores.

    python -m deployments.pd.train [--steps 1500] [--base-channels 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deployments.pd import synthetic
from deployments.pd.evaluate import HELD_OUT_SEED, evaluate
from deployments.pd.inference import PDModel
from deployments.pd.model import UNet1D, architecture_of, count_parameters
from deployments.pd.processing import WINDOW_SIZE, PreprocessParams, preprocess

WEIGHTS_PATH = Path(__file__).parent / "weights" / "pd_unet1d.pt"


def training_batch(step: int, signals: int, crops_per_signal: int,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(signals * crops, 1, 1024) preprocessed windows and their float masks."""
    data = synthetic.generate(signals, seed=step)
    processed, _ = preprocess(data.signals, PreprocessParams(chunk_rows=1))
    # Rows of a multi-signal request share one scale, so a row's peak may sit well
    # below 1: train on peaks from 0.1 (the row-selection floor) to 1.
    processed *= rng.uniform(0.1, 1.0, size=(signals, 1)).astype(np.float32)
    starts = rng.integers(0, data.signals.shape[1] - WINDOW_SIZE + 1,
                          size=(signals, crops_per_signal))
    rows = np.repeat(np.arange(signals), crops_per_signal)
    index = starts.reshape(-1)[:, None] + np.arange(WINDOW_SIZE)[None, :]
    x = processed[rows[:, None], index]
    y = data.masks[rows[:, None], index].astype(np.float32)
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None]


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the batch: rewards whole-region overlap, which BCE underweights."""
    p = torch.sigmoid(logits)
    return 1.0 - (2.0 * (p * target).sum() + 1.0) / (p.sum() + target.sum() + 1.0)


def train(steps: int, base_channels: int, signals_per_step: int, crops_per_signal: int,
          learning_rate: float, seed: int) -> tuple[UNet1D, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = UNet1D(base_channels=base_channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate,
                                                   total_steps=steps, pct_start=0.15)
    bce = nn.BCEWithLogitsLoss()
    started = time.monotonic()
    model.train()
    for step in range(steps):
        x, y = training_batch(step, signals_per_step, crops_per_signal, rng)
        logits = model(x)
        loss = bce(logits, y) + dice_loss(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    return model.eval(), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--signals-per-step", type=int, default=8)
    parser.add_argument("--crops-per-signal", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is steadiest on a busy 2-core machine)")
    parser.add_argument("--eval-signals", type=int, default=200)
    parser.add_argument("--output", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    if args.steps >= HELD_OUT_SEED:
        parser.error("--steps must stay below the held-out seed range")
    torch.set_num_threads(args.threads)

    model, seconds = train(args.steps, args.base_channels, args.signals_per_step,
                           args.crops_per_signal, args.learning_rate, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    state_dict = model.state_dict()
    torch.save(state_dict, args.output)
    scores = evaluate(PDModel(model), args.eval_signals)
    sidecar = {
        "architecture": architecture_of(state_dict),
        "parameters": count_parameters(model),
        "sha256": hashlib.sha256(args.output.read_bytes()).hexdigest(),
        "training": {
            "steps": args.steps, "signals_per_step": args.signals_per_step,
            "crops_per_signal": args.crops_per_signal, "window": WINDOW_SIZE,
            "learning_rate": args.learning_rate, "seed": args.seed,
            "threads": args.threads, "seconds": round(seconds, 1),
            "synthetic": dataclasses.asdict(synthetic.SyntheticParams()),
        },
        "held_out": scores,
    }
    args.output.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
