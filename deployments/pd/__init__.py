"""Partial-discharge (PD) segmentation: the original service's UNet1D, served with batching."""
