"""Peak memory of a decoder while it refuses each class of oversize input.

    python bench/input_memory.py [--json]

Each case's input is built here and written to a temporary file; a fresh Python process
then imports the decoders, resets its peak resident memory (Linux: `/proc/self/clear_refs`),
reads the input and runs the decoder a replica runs on it. "peak" is that process's peak
resident memory over its resident memory before it read the input, so it counts the input
itself and everything decoding allocated until the refusal. "limit" is the input-size
limit of the class (`PDLimits.max_input_bytes`, `DentalArgs.max_image_bytes`,
`AssessmentArgs.max_audio_bytes`); the target is a peak under 3x the limit. Two accepted
PD inputs at the sample limit show what parsing costs when nothing is refused.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
TARGET_RATIO = 3.0


@dataclass(frozen=True)
class Case:
    name: str
    decoder: str  # "pd-csv", "pd-npy", "dental" or "audio"
    make: Callable[[], bytes]
    expect: str  # words of the refusal ("" for an input that is accepted)


@dataclass(frozen=True)
class Measured:
    case: str
    input_bytes: int
    limit_name: str
    limit: int
    peak: int
    status: int  # 200: decoded; otherwise the InputError's status code
    message: str

    @property
    def ratio(self) -> float:
        return self.peak / self.limit


# ---------------------------------------------------------------- inputs


def csv_one_long_row() -> bytes:
    """Just under 64 MiB of one row: more samples than a signal may have."""
    return b"0.125," * ((64 * MIB - 1024) // 6) + b"0.125"


def csv_many_wide_rows() -> bytes:
    """500 rows of 22,000 values (66 MB): past the samples per request at row 182, after
    4,000,000 values have been parsed, the most a CSV holds before it is refused."""
    row = b"0.125," * 21_999 + b"0.125\n"
    return row * 500


def csv_one_long_column() -> bytes:
    """Just under 64 MiB of one value a line: one signal far longer than allowed."""
    return b"0.125\n" * ((64 * MIB - 1024) // 6)


def csv_at_the_limit() -> bytes:
    """Accepted: 5 signals of 800,000 samples (4,000,000 values, 24 MB)."""
    return (b"0.125," * 799_999 + b"0.125\n") * 5


def npy_header_only(descr: str, shape: tuple[int, ...], data_bytes: int) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * data_bytes


def npy_at_the_limit() -> bytes:
    """Accepted: 5 x 800,000 float32 (16 MB), converted to 32 MB of float64."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.full((5, 800_000), 0.125, np.float32))
    return buffer.getvalue()


def png_16bit(width: int, height: int) -> bytes:
    """A 16-bit grayscale PNG of zeros: about 100 KB for 7000 x 7000 (98 MB decoded)."""
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.zeros((height, width), np.uint16)).save(out, format="PNG")
    return out.getvalue()


def png_text_bomb(chunks: int = 200) -> bytes:
    """A 100 x 100 PNG with `chunks` compressed text chunks of 1 MB each (200 KB file)."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for i in range(chunks):
        info.add_text(f"k{i}", "A" * 1_000_000, zip=True)
    out = io.BytesIO()
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def flac_silence(seconds: float, rate: int = 48_000, channels: int = 2,
                 declare_length: bool = True) -> bytes:
    """Lossless silence (a few hundred bytes a second); without `declare_length` the
    STREAMINFO total-samples field is zeroed, as a streamed encoder leaves it."""
    import numpy as np
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.zeros((int(seconds * rate), channels), np.int16), rate, format="FLAC")
    data = bytearray(out.getvalue())
    if not declare_length:
        # fLaC, a 4-byte block header, then STREAMINFO: its bytes 10..17 hold the sample
        # rate (20 bits), channels (3), bits per sample (5) and total samples (36).
        field = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = field.to_bytes(8, "big")
    return bytes(data)


def wav_channels(channels: int, seconds: float = 1.0, rate: int = 16_000) -> bytes:
    import numpy as np
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.zeros((int(seconds * rate), channels), np.int16), rate, format="WAV")
    return out.getvalue()


CASES = [
    Case("pd-csv one 64 MiB row", "pd-csv", csv_one_long_row, "more than 800000 values"),
    Case("pd-csv 500 rows x 22k", "pd-csv", csv_many_wide_rows,
         "more than 4000000 values"),
    Case("pd-csv one 64 MiB column", "pd-csv", csv_one_long_column,
         "column has more than 800000 values"),
    Case("pd-npy <U100000", "pd-npy", lambda: npy_header_only("<U100000", (800_000,), 100),
         ".npy dtype <U100000 is not accepted"),
    Case("pd-npy declares 512x800000 f8", "pd-npy",
         lambda: npy_header_only("<f8", (512, 800_000), 1024),
         "more than the limit of 4000000 samples"),
    Case("dental 7000x7000 16-bit PNG", "dental", lambda: png_16bit(7000, 7000),
         "more than the limit of 16000000 pixels"),
    Case("dental PNG 200 MB of text", "dental", png_text_bomb,
         "header or metadata is malformed or too large"),
    Case("audio FLAC 10 min declared", "audio", lambda: flac_silence(600),
         "lasts 600.0 s; the limit is 20 s"),
    Case("audio FLAC 10 min undeclared", "audio",
         lambda: flac_silence(600, declare_length=False), "lasts over 20 s"),
    Case("audio WAV 64 channels", "audio", lambda: wav_channels(64),
         "64 channels, more than the limit of 2"),
    Case("pd-csv accepted 5x800k", "pd-csv", csv_at_the_limit, ""),
    Case("pd-npy accepted 5x800k f4", "pd-npy", npy_at_the_limit, ""),
]


# ---------------------------------------------------------------- the measuring process


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def child(decoder: str, path: str) -> dict:
    """Run in a fresh process: decode `path` and report the peak memory it took."""
    import gc

    import soxr  # noqa: F401  (decode_audio imports it lazily: not part of the measure)
    from PIL import Image

    from deployments.common.errors import InputError
    from deployments.dental.config import DentalArgs
    from deployments.dental.image import decode_image
    from deployments.pd.config import PDLimits
    from deployments.pd.inputs import signals_from_csv, signals_from_npy
    from deployments.pronunciation.audio import decode_audio
    from deployments.pronunciation.config import AssessmentArgs
    from serve_app.api.errors import STATUS_BY_INPUT_KIND

    Image.init()  # PIL loads its format plugins on first open: import them now
    pd, dental, audio = PDLimits(), DentalArgs(), AssessmentArgs()
    limits = {"pd-csv": ("max_input_bytes", pd.max_input_bytes),
              "pd-npy": ("max_input_bytes", pd.max_input_bytes),
              "dental": ("max_image_bytes", dental.max_image_bytes),
              "audio": ("max_audio_bytes", audio.max_audio_bytes)}
    run = {"pd-csv": lambda data: signals_from_csv(data, pd),
           "pd-npy": lambda data: signals_from_npy(data, pd),
           "dental": lambda data: decode_image(data, dental.max_image_pixels),
           "audio": lambda data: decode_audio(
               data, audio.max_duration_s, audio.warn_min_duration_s,
               max_channels=audio.max_channels, max_sample_rate=audio.max_sample_rate)}
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := RSS now
    before = _status_kib("VmRSS")
    data = Path(path).read_bytes()
    try:
        run[decoder](data)
        status, message = 200, ""
    except InputError as exc:
        status, message = STATUS_BY_INPUT_KIND[exc.kind.value], str(exc)
    peak = (_status_kib("VmHWM") - before) * 1024
    limit_name, limit = limits[decoder]
    return {"input_bytes": len(data), "limit_name": limit_name, "limit": limit, "peak": peak,
            "status": status, "message": message}


def measure(case: Case, workdir: Path) -> Measured:
    """Build `case`'s input and measure its decoding in a fresh process."""
    path = workdir / "input.bin"
    path.write_bytes(case.make())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, __file__, "--child", case.decoder, str(path)],
                          capture_output=True, text=True, timeout=300, env=env, check=True)
    path.unlink()
    return Measured(case.name, **json.loads(done.stdout.splitlines()[-1]))


def table(results: list[Measured]) -> str:
    lines = [f"{'input class':32} {'input':>9} {'limit':>24} {'peak':>9} {'ratio':>6}  outcome",
             "-" * 110]
    for r in results:
        outcome = "accepted" if r.status == 200 else f"{r.status}: {r.message[:52]}"
        lines.append(f"{r.case:32} {r.input_bytes / MIB:7.2f}Mi {r.limit_name:>15}="
                     f"{r.limit / MIB:4.0f} MiB {r.peak / MIB:7.2f}Mi {r.ratio:5.2f}x  {outcome}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    parser.add_argument("--child", nargs=2, metavar=("DECODER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(case, Path(tmp)) for case in CASES]
    if args.json:
        print(json.dumps([r.__dict__ | {"ratio": r.ratio} for r in results], indent=1))
    else:
        print(table(results))
    refused = [r for r, c in zip(results, CASES, strict=True) if c.expect]
    return 0 if all(r.status != 200 and r.ratio < TARGET_RATIO for r in refused) else 1


if __name__ == "__main__":
    sys.exit(main())
