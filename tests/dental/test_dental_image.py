"""Fetching and decoding the radiograph, including 16-bit PNG and bad inputs."""

from __future__ import annotations

import base64
import io
import socket

import numpy as np
import pytest
from PIL import Image

from deployments.common.errors import ErrorKind, InputError, TooLarge, Unsupported
from deployments.common.fetch import fetch_input
from deployments.common.outbound import OutboundPolicy
from deployments.dental.image import decode_image, image_stem
from deployments.dental.synthetic import synthetic_radiograph
from tests.dental.dental_helpers import jpeg_bytes, png_bytes

MAX_PIXELS = 10_000_000


def test_8bit_grayscale_png_becomes_three_equal_channels() -> None:
    gray = synthetic_radiograph(64, 128)
    rgb, fmt = decode_image(png_bytes(gray), MAX_PIXELS)
    assert fmt == "PNG" and rgb.shape == (64, 128, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_rgb_png_and_jpeg_decode_to_rgb() -> None:
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    rgb, _ = decode_image(png_bytes(colour), MAX_PIXELS)
    np.testing.assert_array_equal(rgb, colour)
    smooth = np.zeros((32, 48, 3), dtype=np.uint8)
    smooth[..., 0] = 200  # pure red survives JPEG closely; checks channel order
    rgb, fmt = decode_image(jpeg_bytes(smooth), MAX_PIXELS)
    assert fmt == "JPEG" and rgb.shape == (32, 48, 3)
    assert rgb[..., 0].mean() > 180 and rgb[..., 2].mean() < 20


def test_rgba_and_palette_png_decode_to_rgb() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 10
    rgb, _ = decode_image(png_bytes(rgba), MAX_PIXELS)
    assert rgb.shape == (8, 8, 3) and (rgb[..., 1] == 255).all()
    out = io.BytesIO()
    Image.fromarray(synthetic_radiograph(16, 16)).convert("P").save(out, format="PNG")
    assert decode_image(out.getvalue(), MAX_PIXELS)[0].shape == (16, 16, 3)


def test_16bit_grayscale_png_is_stretched_to_8bit() -> None:
    # X-rays often store 12 bits of data in a 16-bit PNG: dividing by 257 would leave
    # them nearly black, so the range used is stretched onto 0..255.
    gray12 = synthetic_radiograph(64, 128, bit_depth=16)
    assert gray12.dtype == np.uint16 and gray12.max() < 4096
    data = png_bytes(gray12)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    rgb, _ = decode_image(data, MAX_PIXELS)
    out = rgb[:, :, 0]
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    order = np.argsort(gray12.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()  # monotonic mapping

    ramp = np.array([[1000, 2000, 3000]], dtype=np.uint16).repeat(2, axis=0)
    assert decode_image(png_bytes(ramp), MAX_PIXELS)[0][0, :, 0].tolist() == [0, 128, 255]


def test_not_an_image_is_refused_with_a_reason() -> None:
    with pytest.raises(Unsupported, match="not a decodable image"):
        decode_image(b"%PDF-1.4 definitely not a radiograph", MAX_PIXELS)


def test_unsupported_format_is_refused() -> None:
    out = io.BytesIO()
    Image.fromarray(synthetic_radiograph(16, 16)).save(out, format="GIF")
    with pytest.raises(Unsupported, match="unsupported image format GIF"):
        decode_image(out.getvalue(), MAX_PIXELS)


def test_truncated_png_is_refused() -> None:
    data = png_bytes(np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8))
    with pytest.raises(InputError, match="corrupt or truncated") as info:
        decode_image(data[: len(data) // 2], MAX_PIXELS)
    assert info.value.kind is ErrorKind.BAD_INPUT  # a format it reads, badly written


def test_too_many_pixels_is_refused_from_the_header() -> None:
    data = png_bytes(np.zeros((2000, 3000), dtype=np.uint8))  # compresses to a few kB
    with pytest.raises(TooLarge, match="more than the limit"):
        decode_image(data, max_pixels=1_000_000)


def test_data_uri_and_bare_base64_inputs(radiograph_png: bytes) -> None:
    encoded = base64.b64encode(radiograph_png).decode()
    for ref in ("data:image/png;base64," + encoded, encoded):
        image, _ = decode_image(fetch_input(ref, 1 << 20, OutboundPolicy()), MAX_PIXELS)
        assert image.shape == (256, 512, 3)


def test_too_large_input_is_refused(radiograph_png: bytes) -> None:
    encoded = base64.b64encode(radiograph_png).decode()
    with pytest.raises(TooLarge, match="larger than the limit"):
        fetch_input(encoded, 1000, OutboundPolicy())


def test_unreachable_url_is_an_input_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loopback = OutboundPolicy(allow_networks=["127.0.0.1/32"])
    with pytest.raises(InputError, match="could not fetch"):
        fetch_input(f"http://127.0.0.1:{port}/pan.png", 1 << 20, loopback, timeout_s=2)
    with pytest.raises(InputError, match="unsupported URL scheme"):
        fetch_input("ftp://example.org/pan.png", 1 << 20, loopback)


def test_file_name_comes_from_the_url_or_the_fallback() -> None:
    assert image_stem("https://x.org/scans/pan-01432.jpg?sig=1", "job") == "pan-01432"
    assert image_stem("s3://bucket/a/b/pan-7.png", "job") == "pan-7"
    assert image_stem("data:image/png;base64,AAAA", "job-1") == "job-1"
