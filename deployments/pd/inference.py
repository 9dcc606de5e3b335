"""In-process PD inference: window logits from the UNet, and segmentation of one signal.

Plain Python (no Ray): the Serve deployment wraps `PDModel.predict_windows` in a batch
queue, while evaluation, training and the benchmark call it directly.
"""

from __future__ import annotations

import numpy as np
import torch

from deployments.pd import processing
from deployments.pd.model import UNet1D, count_parameters, load_from_uri
from deployments.pd.processing import Segmentation, SegmentSettings, segmentation_from_logits


class PDModel:
    """A loaded UNet1D on a device, taking and returning numpy windows."""

    def __init__(self, network: UNet1D, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    @classmethod
    def from_uri(cls, uri: str, device: torch.device | str = "cpu") -> PDModel:
        return cls(load_from_uri(uri, device), device)

    @property
    def parameters(self) -> int:
        return count_parameters(self.network)

    @torch.inference_mode()
    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Logits (batch, window) for preprocessed windows (batch, window)."""
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        return self.network(x.to(self.device)[:, None, :])[:, 0].float().cpu().numpy()

    def segment(self, signal: np.ndarray, settings: SegmentSettings | None = None
                ) -> Segmentation:
        """Segment one preprocessed 1-D signal, all its windows in one batch."""
        settings = settings or SegmentSettings()
        windows = processing.split_windows(signal, settings.window_size, settings.overlap)
        return segmentation_from_logits(self.predict_windows(windows), signal.size, settings)
