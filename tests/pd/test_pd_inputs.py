"""Job input decoding and validation: every bad input is an InputError that says why."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from deployments.common.errors import ErrorKind, InputError, parse_input
from deployments.common.outbound import OutboundPolicy
from deployments.pd import inputs
from deployments.pd.config import PDLimits
from deployments.pd.inputs import PDInput, load_signals

LIMITS = PDLimits(max_rows=4, max_samples=2000, max_total_samples=5000,
                  max_input_bytes=100_000)


def load(raw: dict, limits: PDLimits = LIMITS) -> np.ndarray:
    return load_signals(parse_input(PDInput, raw), limits)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Happy paths.

def test_one_json_signal_is_one_row() -> None:
    out = load({"signals": list(range(100))})
    assert out.shape == (1, 100) and out.dtype == np.float64 and out[0, 99] == 99


def test_json_rows() -> None:
    assert load({"signals": [[0.5] * 50, [1] * 50, [-2] * 50]}).shape == (3, 50)


def test_npy_base64_and_data_uri() -> None:
    array = np.random.default_rng(0).normal(size=(2, 300)).astype(np.float32)
    np.testing.assert_array_equal(load({"file_base64": b64(npy_bytes(array))}), array)
    uri = "data:application/octet-stream;base64," + b64(npy_bytes(array))
    np.testing.assert_array_equal(load({"file_base64": uri}), array)
    np.testing.assert_array_equal(load({"file_url": uri}), array)


def test_csv_rows_with_header_and_a_single_column() -> None:
    rows = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n" + "\n".join(
        ",".join(str(i + j) for j in range(16)) for i in range(3))
    out = load({"file_base64": b64(rows.encode())})
    assert out.shape == (3, 16) and out[2, 15] == 17
    column = "\n".join(str(i) for i in range(40))
    assert load({"file_base64": b64(column.encode()), "format": "csv"}).shape == (1, 40)


@pytest.fixture
def http_server() -> Iterator[str]:
    """A local HTTP server with /signals.npy (fetching is offline, on 127.0.0.1)."""
    body = npy_bytes(np.arange(64.0))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/signals.npy":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_npy_by_url(http_server: str) -> None:
    loopback = LIMITS.model_copy(update={"outbound": OutboundPolicy(
        allow_networks=["127.0.0.1/32"])})
    np.testing.assert_array_equal(load({"file_url": f"{http_server}/signals.npy"}, loopback)[0],
                                  np.arange(64.0))
    with pytest.raises(InputError, match="HTTP 404"):
        load({"file_url": f"{http_server}/missing.npy"}, loopback)
    with pytest.raises(InputError, match="127.0.0.1 is a loopback address"):
        load({"file_url": f"{http_server}/signals.npy"})  # the default policy


# Unhappy paths.

@pytest.mark.parametrize(("raw", "message"), [
    ({"signals": [1.0, None] + [0.0] * 30}, "NaN, infinite or null.*sample 1"),
    ({"signals": [[0.0] * 20, [0.0] * 19 + [float("inf")]]}, "NaN, infinite.*signal 1"),
    ({"signals": [[0.0] * 20, [0.0] * 19]}, "same length.*signal 1 has 19"),
    ({"signals": [[[0.0] * 20]]}, "3-D"),
    ({"signals": [[0.0] * 20, 5]}, "mix arrays and numbers"),
    ({"signals": []}, "empty"),
    ({"signals": [[]]}, "empty"),
    ({"signals": ["a"] * 20}, "only numbers"),
    ({"signals": 5}, "JSON array"),
    ({"signals": [0.0] * 10}, "at least 16 samples"),
    ({"signals": [[0.0] * 20] * 5}, "5 signals is more than the limit of 4"),
    ({"signals": [0.0] * 2001}, "longer than the limit of 2000"),
    ({"signals": [[0.0] * 1500] * 4}, "limit of 5000 samples per request"),
    ({}, "exactly one of signals, file_url or file_base64"),
    ({"signals": [0.0] * 20, "file_url": "https://x/y.npy"}, "got signals, file_url"),
    ({"signals": [0.0] * 20, "colour": "red"}, "colour"),
    ({"file_url": "ftp://host/x.npy"}, "https://, http://, s3:// or data:"),
    ({"file_base64": "not base64!"}, "base64"),
    ({"file_base64": b64(b"1,2,nan," + b"0," * 20 + b"0")}, "NaN"),
    ({"file_base64": b64(b"1,2,3\n4,5\n")}, "same number of values.*data row 2 has 2"),
    ({"file_base64": b64(b"1,2,x," + b"0," * 20 + b"0")}, "must be numbers"),
    ({"file_base64": b64(b"\xff\xfe\x00garbage")}, "not UTF-8"),
])
def test_bad_input_is_an_input_error_naming_the_problem(raw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load(raw)


def test_input_must_be_an_object() -> None:
    with pytest.raises(InputError, match="JSON object"):
        parse_input(PDInput, [1, 2, 3])


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((2, 2, 20)), "3-D"),
    (np.zeros((0, 20)), "empty"),
    (np.array([1 + 2j] * 20), "real numbers"),
    (np.array([np.nan] * 20), "NaN"),
])
def test_bad_npy(array: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load({"file_base64": b64(npy_bytes(array))})


def test_npy_of_python_objects_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()] * 20, dtype=object), allow_pickle=True)
    data = buffer.getvalue()
    with pytest.raises(InputError, match="Python objects"):
        load({"file_base64": b64(data)})


def test_huge_npy_is_refused_from_its_header_before_decoding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A header claiming 10^6 x 10^6 samples is refused from the first bytes of the base64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    encoded = b64(header.getvalue() + b"\0" * 3000)

    def no_decoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the whole input was decoded")

    monkeypatch.setattr(inputs, "fetch_input", no_decoding)
    with pytest.raises(InputError, match="more than the limit") as caught:
        load({"file_base64": encoded})
    assert caught.value.kind is ErrorKind.TOO_LARGE


def test_oversize_base64_is_refused_by_its_length() -> None:
    encoded = b64(npy_bytes(np.zeros(1000)))
    with pytest.raises(InputError, match="larger than the limit of 1000 bytes"):
        load({"file_base64": encoded}, LIMITS.model_copy(update={"max_input_bytes": 1000}))
