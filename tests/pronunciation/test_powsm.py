"""The POWSM backends load, decode and parse through the code that loads real POWSM,
on tiny ESPnet S2T models built here (see tiny_powsm.py)."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
import soundfile as sf

from deployments.common.errors import InputError
from deployments.pronunciation.backends.powsm import parse_powsm_output

FIXTURES = Path(__file__).parent / "fixtures"

needs_espnet = pytest.mark.skipif(
    importlib.util.find_spec("espnet2") is None,
    reason="ESPnet is not installed (the `powsm` extra; see the README for the install line)")


def test_parse_powsm_output() -> None:
    assert parse_powsm_output("<eng><pr><notimestamps>/p//h//o/") == ["p", "h", "o"]
    assert parse_powsm_output("<eng><pr><notimestamps> /tʃ/ /iː//z/<eos>") == ["tʃ", "iː", "z"]
    assert parse_powsm_output("/a//b/") == ["a", "b"]
    assert parse_powsm_output("<eng><pr><notimestamps>") == []


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.pronunciation.tiny_powsm import build_tiny_powsm

    root = tmp_path_factory.mktemp("powsm")
    return {"powsm": build_tiny_powsm(root / "aed"),
            "powsm_ctc": build_tiny_powsm(root / "ctc", ctc=True)}


@needs_espnet
@pytest.mark.parametrize("name", ["powsm", "powsm_ctc"])
def test_tiny_model_loads_decodes_and_parses(tiny_models: dict[str, Path], name: str) -> None:
    from deployments.pronunciation.backends import build_backend
    from tests.pronunciation.tiny_powsm import EMIT

    options = {"maxlenratio": 0.1, "beam_size": 2} if name == "powsm" else {}
    backend = build_backend(name, {"model_uri": str(tiny_models[name]),
                                   "decode_options": options})
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    result = backend.recognize(audio, "en-us", "ignored by POWSM")
    assert result.backend == name and result.alignment is None
    # the tiny model's output bias makes it say EMIT, written "/oʊ/" and parsed to "oʊ"
    assert result.phones and {p.phone for p in result.phones} == {EMIT}
    assert backend.language_symbol("en-us") == "<eng>"
    assert backend.language_symbol("de-DE") == backend.language_symbol("deu") == "<deu>"
    with pytest.raises(InputError, match="no symbol"):
        backend.recognize(audio, "fr")


@needs_espnet
def test_loads_from_s3(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from deployments.pronunciation.backends import build_backend

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        local = tiny_models["powsm_ctc"]
        for path in local.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"powsm-ctc/{path.relative_to(local)}")
        backend = build_backend("powsm_ctc", {"model_uri": f"s3://{bucket}/powsm-ctc"})
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    assert backend.recognize(audio, "en").phones


@needs_espnet
@pytest.mark.parametrize("name", ["powsm", "powsm_ctc"])
def test_given_phones_are_aligned_and_scored_through_the_ctc_head(
        tiny_models: dict[str, Path], name: str) -> None:
    """Random weights, so plumbing only: the tiny model's CTC head says EMIT in every
    frame, so EMIT scores as heard (GOP 0) and any other phone as replaced by EMIT."""
    from deployments.pronunciation.backends import build_backend
    from deployments.pronunciation.scoring import score
    from deployments.pronunciation.types import CanonicalWord
    from tests.pronunciation.tiny_powsm import EMIT

    options = {"maxlenratio": 0.1, "beam_size": 2} if name == "powsm" else {}
    backend = build_backend(name, {"model_uri": str(tiny_models[name]),
                                   "decode_options": options})
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    words = [CanonicalWord(word="Oh,", phones=[EMIT]),
             CanonicalWord(word="pat", phones=["p", "a", "t"]),
             CanonicalWord(word="zoo", phones=["z", "u"])]  # not in the tiny phone set
    result = backend.recognize(audio, "en-us", "oh pat zoo", words)
    oh, pat = result.alignment
    assert (oh.word, pat.word) == ("oh", "pat")
    assert oh.phones[0].lpr == 0.0 and oh.phones[0].confidence > 0.99
    assert [p.phone for p in pat.phones] == ["p", "a", "t"]
    assert all(p.lpr < -1.0 and p.rival == EMIT and p.confidence < 0.01 for p in pat.phones)
    phones = [p for w in result.alignment for p in w.phones]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(phones, phones[1:], strict=False))
    assert 0.0 <= phones[0].start and phones[-1].end <= len(audio) / 16_000 + 0.1
    assert all(p.frames >= 1 for p in phones)
    assert any("2 reference phone(s) are not in this POWSM model" in w for w in result.warnings)
    # The committed calibration is pocketsphinx's: these GOPs score through confidences.
    scores = score(words, result)
    oh_verdict, pat_verdict, _ = [w.verdict for w in scores.words]
    assert oh_verdict == "correct" and pat_verdict in ("mispronounced", "missing")
    expected = [p.gop for p in scores.phones if p.expected is not None][:4]
    assert expected == pytest.approx([0.0, *(p.lpr for p in pat.phones)], abs=1e-3)
