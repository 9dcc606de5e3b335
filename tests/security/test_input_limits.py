"""Bounded inputs: each decoder refuses oversize input from its declared sizes, before it
allocates them, with an InputError that says what is wrong without quoting the input;
and a batched model call gives each request its own error.

The memory bound (peak under 3x the class's input limit while refusing) is measured in
a fresh process per class by `bench/input_memory.py`. The same refusals through the
running application's HTTP routes are in tests/pd/test_pd_http.py,
tests/dental/test_dental_http.py, tests/spine/test_direct_and_g2p.py and
tests/pronunciation/test_assess_http.py, beside the app fixtures they share.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from bench.input_memory import (
    CASES,
    TARGET_RATIO,
    Case,
    flac_silence,
    measure,
    npy_header_only,
    png_16bit,
    png_text_bomb,
    wav_channels,
)
from deployments.common.batching import call_per_item, raise_if_error
from deployments.common.errors import InputError, parse_input
from deployments.dental.config import DentalArgs
from deployments.dental.image import decode_image
from deployments.g2p.backends import GruutBackend
from deployments.pd import inputs
from deployments.pd.config import PDLimits
from deployments.pd.inputs import PDInput, load_signals, signals_from_csv, signals_from_npy
from deployments.pronunciation.audio import decode_audio
from serve_app.api.errors import STATUS_BY_INPUT_KIND

PD = PDLimits()
SMALL = PDLimits(max_rows=4, max_samples=2000, max_total_samples=5000)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refused(call, *args: object, status: int, match: str, **kwargs: object) -> InputError:
    """`call` refuses with an input error whose kind the HTTP boundary answers as `status`."""
    with pytest.raises(InputError, match=match) as caught:
        call(*args, **kwargs)
    assert STATUS_BY_INPUT_KIND[caught.value.kind.value] == status
    return caught.value


# ---------------------------------------------------------------- PD: CSV


def test_a_csv_row_longer_than_a_signal_is_refused_while_parsing() -> None:
    refused(signals_from_csv, b"0.5," * 2500 + b"0.5", SMALL, status=413,
            match="CSV data row 1 has more than 2000 values")


def test_csv_rows_past_the_samples_per_request_are_refused_while_parsing() -> None:
    rows = (b"0.5," * 1999 + b"0.5\n") * 3  # 3 x 2000 > 5000
    refused(signals_from_csv, rows, SMALL, status=413, match="more than 5000 values")


def test_csv_past_the_row_limit_is_refused() -> None:
    refused(signals_from_csv, b"0.5,0.5\n" * 6, SMALL, status=413,
            match="more than 4 rows: the limit is 4 signals")


def test_a_csv_column_longer_than_a_signal_is_refused() -> None:
    refused(signals_from_csv, b"0.5\n" * 2001, SMALL, status=413,
            match="column has more than 2000 values")


def test_a_longer_row_is_refused_without_reading_it_all() -> None:
    data = b"0.5," * 20 + b"0.5\n" + b"0.5," * 1_000_000 + b"0.5\n"
    refused(signals_from_csv, data, SMALL, status=400,
            match="the first has 21, data row 2 has more")


def test_a_csv_error_names_the_place_and_never_quotes_the_content() -> None:
    """An internal page fetched by URL must not come back through the parse error."""
    page = b"0.5,0.25,0.125\n1,2,<html>secret-admin-token-42</html>\n"
    error = refused(signals_from_csv, page, SMALL, status=400,
                    match="data row 2, value 3 is not a number")
    assert "secret" not in str(error) and "html" not in str(error)
    header_only = b"<html><body>internal status page: secret</body></html>\n"
    assert "secret" not in str(refused(signals_from_csv, header_only, SMALL, status=400,
                                       match="signals are empty"))


def test_a_csv_parses_to_the_same_numbers_in_every_layout() -> None:
    expected = np.arange(40.0).reshape(2, 20)
    rows = "\n".join(";\t".join(str(v) for v in row) for row in expected)
    data = "\ufeffa,b\r\n" + rows.replace("\n", "\r\n\r\n") + "\n"
    np.testing.assert_array_equal(signals_from_csv(data.encode(), SMALL), expected)
    column = b"\n".join(str(v).encode() for v in expected[0]) + b"\n"
    np.testing.assert_array_equal(signals_from_csv(column, SMALL), expected[:1])


# ---------------------------------------------------------------- PD: .npy


def test_an_npy_of_unicode_strings_is_refused_by_its_header() -> None:
    data = npy_header_only("<U100000", (800_000,), 100)
    refused(signals_from_npy, data, PD, status=400, match=r".npy dtype <U100000 is not accepted")


def test_an_npy_header_declaring_strings_is_refused_before_the_base64_is_decoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the whole input was decoded")

    monkeypatch.setattr(inputs, "fetch_input", no_decoding)
    encoded = b64(npy_header_only("<U100000", (64,), 3000))
    refused(load_signals, parse_input(PDInput, {"file_base64": encoded}), PD, status=400,
            match="signals must be real numbers")


@pytest.mark.parametrize("descr", ["|S8", "|V8", "<M8[s]", "<m8[s]", "|b1", "<c8"])
def test_npy_dtypes_other_than_integers_and_floats_are_refused(descr: str) -> None:
    refused(signals_from_npy, npy_header_only(descr, (32,), 256), PD, status=400,
            match="is not accepted: signals must be real numbers")


def test_an_npy_header_declaring_a_huge_shape_is_refused() -> None:
    refused(signals_from_npy, npy_header_only("<f8", (512, 800_000), 1024), PD, status=413,
            match="512 x 800000 samples is more than the limit of 4000000")


def test_an_npy_whose_data_does_not_match_its_header_is_refused() -> None:
    refused(signals_from_npy, npy_header_only("<f8", (1000,), 80), PD, status=400,
            match="does not match its header")


def test_a_malformed_npy_header_is_refused_without_quoting_it() -> None:
    data = b"\x93NUMPY\x01\x00\x40\x00{'secret': 'internal-42'}" + b" " * 40
    error = refused(signals_from_npy, data, PD, status=400, match="header is malformed")
    assert "secret" not in str(error)


def test_npy_in_any_byte_order_and_layout_is_read_in_place() -> None:
    array = np.arange(64, dtype=">i4").reshape(2, 32)
    for ordered in (array, np.asfortranarray(array), array.astype("<f2")):
        buffer = io.BytesIO()
        np.save(buffer, ordered)
        np.testing.assert_array_equal(signals_from_npy(buffer.getvalue(), PD), array)


# ---------------------------------------------------------------- dental images


def test_a_16bit_7000x7000_png_of_100kb_is_refused_from_its_header() -> None:
    data = png_16bit(7000, 7000)
    assert len(data) < 150_000
    refused(decode_image, data, DentalArgs().max_image_pixels, status=413,
            match="7000x7000 pixels, more than the limit of 16000000 pixels")


def test_the_decoded_size_counts_the_bytes_per_pixel_of_the_mode() -> None:
    """Within the pixel limit, an image is refused when its mode decodes to more bytes
    than an RGB image of the limit: 30 x 30 RGBA (3600 bytes) over 1000 pixels x 3."""
    rgba, rgb = io.BytesIO(), io.BytesIO()
    Image.new("RGBA", (30, 30)).save(rgba, format="PNG")
    Image.new("RGB", (30, 30)).save(rgb, format="PNG")
    refused(decode_image, rgba.getvalue(), 1000, status=413,
            match="30x30 pixels of mode RGBA: 3600 bytes decoded, more than the limit of "
                  "3000 bytes")
    assert decode_image(rgb.getvalue(), 1000)[0].shape == (30, 30, 3)


def test_png_text_chunks_are_refused_past_a_small_budget_while_opening() -> None:
    """PIL inflates compressed text chunks as it opens a PNG (64 MB by default): a
    200 KB file of text is refused after 1 MiB, as a 400 (it was a 500)."""
    refused(decode_image, png_text_bomb(), 1_000_000, status=400,
            match="header or metadata is malformed or too large")


def test_the_default_pixel_limit_fits_panoramics_with_room() -> None:
    limit = DentalArgs().max_image_pixels
    assert 3000 * 1500 * 3 < limit <= 20_000_000


# ---------------------------------------------------------------- audio


def test_audio_declaring_a_long_duration_is_refused_from_its_header() -> None:
    refused(decode_audio, flac_silence(600), 20, status=413,
            match="lasts 600.0 s; the limit is 20 s")


def test_audio_declaring_no_length_is_decoded_only_up_to_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    read = sf.SoundFile.read

    def counting(self: sf.SoundFile, frames: int = -1, *args: object, **kwargs: object):
        asked.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting)
    refused(decode_audio, flac_silence(600, declare_length=False), 20, status=413,
            match="lasts over 20 s")
    assert asked == [20 * 48_000 + 1]


def test_audio_with_too_many_channels_is_refused_from_its_header() -> None:
    refused(decode_audio, wav_channels(64), 20, status=413,
            match="64 channels, more than the limit of 2")


def test_audio_with_too_high_a_sample_rate_is_refused_from_its_header() -> None:
    refused(decode_audio, wav_channels(1, rate=192_000), 20, status=413,
            match="192000 Hz, more than the limit of 96000 Hz")


# ---------------------------------------------------------------- batched calls


def test_gruut_names_a_number_it_cannot_spell_as_an_input_error() -> None:
    with pytest.raises(InputError, match="a number too large for the gruut backend"):
        GruutBackend().phonemize(["1e309"], "en-us")


def test_a_failing_item_fails_alone_and_its_batch_mates_get_their_results() -> None:
    calls: list[list[str]] = []

    def upper(batch: list[str]) -> list[str]:
        calls.append(batch)
        if "bad" in batch:
            raise InputError("bad item")
        return [text.upper() for text in batch]

    results = call_per_item(upper, ["a", "bad", "c"])
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], InputError)
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert call_per_item(upper, ["x", "y"]) == ["X", "Y"]
    assert calls[-1] == ["x", "y"]  # a good batch is one call
    assert raise_if_error("A") == "A"
    with pytest.raises(InputError, match="bad item"):
        raise_if_error(results[1])


def test_gruut_batches_isolate_the_text_it_cannot_read() -> None:
    backend = GruutBackend()
    results = call_per_item(lambda batch: backend.phonemize(batch, "en-us"),
                            ["hello", "1e309", "world"])
    assert [w.word for w in results[0]] == ["hello"]
    assert [w.word for w in results[2]] == ["world"]
    assert isinstance(results[1], InputError)


# ---------------------------------------------------------------- peak memory


REFUSALS = [case for case in CASES if case.expect]


@pytest.mark.parametrize("case", REFUSALS, ids=[case.name for case in REFUSALS])
def test_peak_memory_while_refusing_is_under_3x_the_limit(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(case, Path(tmp))
    assert result.status in (400, 413) and case.expect in result.message, result
    assert result.ratio < TARGET_RATIO, result
