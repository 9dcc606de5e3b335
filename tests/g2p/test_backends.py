"""G2P backends without Ray: gruut, espeak-ng, and a CharsiuG2P-style T5 checkpoint.

The T5 here has random weights: these tests prove the loading and decoding plumbing
(local directory and s3:// prefix, prompts, IPA segmentation), not transcription quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.common.errors import InputError
from deployments.g2p.backends import EspeakBackend, GruutBackend, TransformersBackend, segment_ipa
from deployments.g2p.config import G2PArgs
from deployments.g2p.deployment import load_backends
from deployments.g2p.types import G2PResult, WordPhones, strip_stress


def test_gruut_words_and_phones() -> None:
    (words,) = GruutBackend().phonemize(["Hello, world!"], "en-us")
    assert [w.word for w in words] == ["Hello", "world"]
    assert strip_stress(words)[0].phones == ["h", "ɛ", "l", "oʊ"]


def test_gruut_rejects_languages_without_data() -> None:
    backend = GruutBackend()
    assert {"en-us", "en"} <= backend.languages()
    with pytest.raises(InputError, match="not supported by the gruut backend"):
        backend.phonemize(["hallo"], "xx")


def test_espeak_batches_texts_and_keeps_their_order() -> None:
    out = EspeakBackend().phonemize(["one two", "", "three"], "en-us")
    assert [[w.word for w in ws] for ws in out] == [["one", "two"], [], ["three"]]
    assert strip_stress(out[0])[0].phones == ["w", "ʌ", "n"]


def test_result_string_is_the_worker_form() -> None:
    result = G2PResult.from_words("en-us", "gruut", [WordPhones(word="hi", phones=["h", "aɪ"])])
    assert result.ipa == "/h//aɪ/"


def test_ipa_segmentation_keeps_diacritics_with_their_base() -> None:
    assert segment_ipa("siːz") == ["s", "iː", "z"]
    assert segment_ipa("ɡʊd") == ["ɡ", "ʊ", "d"]


def build_tiny_t5(path: Path) -> Path:
    """A ByT5-shaped T5 with random weights, saved the way CharsiuG2P is published."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=16, num_layers=1,
                      num_decoder_layers=1, num_heads=2, decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(config).save_pretrained(path)
    ByT5Tokenizer().save_pretrained(path)
    return path


def test_transformers_backend_loads_a_local_checkpoint(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model_dir = build_tiny_t5(tmp_path / "charsiu")
    backend = TransformersBackend(str(model_dir), {"en-us": "eng-us"}, 8, torch.device("cpu"))
    out = backend.phonemize(["hello world", "x"], "en-us")
    assert [[w.word for w in ws] for ws in out] == [["hello", "world"], ["x"]]
    assert all(isinstance(p, str) for ws in out for w in ws for p in w.phones)
    with pytest.raises(InputError, match="not supported by the transformers backend"):
        backend.phonemize(["bonjour"], "fr")


def test_transformers_backend_from_s3(tmp_path: Path, s3_server: str) -> None:
    import boto3

    model_dir = build_tiny_t5(tmp_path / "charsiu")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    for f in model_dir.iterdir():
        s3.upload_file(str(f), "models", f"g2p/charsiu-tiny/{f.name}")
    args = G2PArgs(backends=["gruut", "transformers"],
                   transformers_model_uri="s3://models/g2p/charsiu-tiny/")
    backends = load_backends(args)
    (words,) = backends["transformers"].phonemize(["cat"], "en-us")
    assert words[0].word == "cat"


def test_config_errors_are_caught_at_start() -> None:
    with pytest.raises(ValueError, match="needs transformers_model_uri"):
        load_backends(G2PArgs(backends=["transformers"], default_backend="transformers"))
    with pytest.raises(ValueError, match="default backend"):
        load_backends(G2PArgs(backends=["espeak"], default_backend="gruut"))
