"""The original PD service's UNet1D, and loading its `state_dict` checkpoints.

Encoder: four double-conv blocks with dilations 1/2/4/8, each followed by max-pooling;
bottleneck: a double conv with 1-D self-attention over positions; decoder: transposed
convolutions with skip connections; a 1x1 head gives one logit per sample. With
`base_channels=64` (the original) the widths are 64..512, the bottleneck 1024, and the
network has about 12 M parameters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deployments.common.fetch import resolve_weights

DEPTH = 4
DILATIONS = (1, 2, 4, 8)
# The four poolings halve the length four times; inputs are padded to this multiple.
LENGTH_MULTIPLE = 2 ** DEPTH


class DoubleConv(nn.Sequential):
    """(conv3 -> batch norm -> ReLU) twice; dilation widens the receptive field."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv1d(out_channels, out_channels, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )


class SelfAttention1d(nn.Module):
    """Self-attention over the positions of a (batch, channels, length) map.

    Queries and keys are projected to channels/8; the output is added back scaled by
    a learned `gamma` that starts at 0, so the block begins as the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv1d(channels, inner, 1)
        self.key = nn.Conv1d(channels, inner, 1)
        self.value = nn.Conv1d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).transpose(1, 2)  # (B, L, inner)
        k = self.key(x)  # (B, inner, L)
        attention = torch.softmax(torch.bmm(q, k) / k.shape[1] ** 0.5, dim=-1)  # (B, L, L)
        out = torch.bmm(self.value(x), attention.transpose(1, 2))  # (B, C, L)
        return x + self.gamma * out


class UNet1D(nn.Module):
    """Per-sample PD segmentation: (batch, in_channels, length) -> logits (batch, out, length).

    Any length is accepted: the input is zero-padded to a multiple of 16 and the output
    cropped back.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 base_channels: int = 64) -> None:
        super().__init__()
        widths = [base_channels * 2 ** i for i in range(DEPTH)]  # 64, 128, 256, 512
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width, dilation in zip(widths, DILATIONS, strict=True):
            self.encoders.append(DoubleConv(previous, width, dilation))
            previous = width
        self.pool = nn.MaxPool1d(2)
        self.bottleneck = DoubleConv(widths[-1], widths[-1] * 2)
        self.attention = SelfAttention1d(widths[-1] * 2)
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        previous = widths[-1] * 2
        for width in reversed(widths):
            self.upsamples.append(nn.ConvTranspose1d(previous, width, 2, stride=2))
            self.decoders.append(DoubleConv(width * 2, width))
            previous = width
        self.head = nn.Conv1d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        pad = -length % LENGTH_MULTIPLE
        if pad:
            x = nn.functional.pad(x, (0, pad))
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.attention(self.bottleneck(x))
        for upsample, decoder, skip in zip(self.upsamples, self.decoders, reversed(skips),
                                           strict=True):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)[..., :length]


def architecture_of(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """`UNet1D` constructor arguments that fit a checkpoint, read from its weight shapes.

    A plain `state_dict` (the original's `best_model.pth`) carries no config; the first
    and last convolutions give the widths.
    """
    first = state_dict["encoders.0.0.weight"]  # (base, in, 3)
    head = state_dict["head.weight"]  # (out, base, 1)
    return {"in_channels": int(first.shape[1]), "out_channels": int(head.shape[0]),
            "base_channels": int(first.shape[0])}


def extract_state_dict(checkpoint: object) -> dict[str, torch.Tensor]:
    """The weights inside a loaded checkpoint.

    Accepts a plain `state_dict`, or a training checkpoint holding one under
    `model_state_dict` or `state_dict`; strips the `module.` prefix DataParallel adds.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint is a {type(checkpoint).__name__}, not a state_dict")
    for key in ("model_state_dict", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def load_unet1d(path: str | Path, device: torch.device | str = "cpu") -> UNet1D:
    """A `UNet1D` in eval mode with the weights of a local checkpoint file."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = extract_state_dict(checkpoint)
    model = UNet1D(**architecture_of(state_dict))
    model.load_state_dict(state_dict)
    return model.to(device).eval()


def load_from_uri(uri: str, device: torch.device | str = "cpu") -> UNet1D:
    """A `UNet1D` from a weights URI: a path, `package://`, `s3://` or `https://`."""
    return load_unet1d(resolve_weights(uri), device)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
