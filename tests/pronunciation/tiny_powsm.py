"""Build a tiny POWSM-shaped ESPnet S2T model on disk, with ESPnet itself.

The directory has the layout of a released POWSM checkpoint (config.yaml naming its
BPE model by a relative path, a .pth state dict, a sentencepiece BPE model whose
phones are "/x/" user symbols), so the POWSM backend loads it by the same code that
loads the real one. Its weights are random except one output bias, which makes it
emit the phone `EMIT` so that decoding has a known answer.
"""

from __future__ import annotations

from pathlib import Path

PHONES = ["p", "h", "o", "a", "t", "s", "k", "i", "ð", "ə", "ɹ", "oʊ"]
EMIT = "oʊ"
SPECIALS = ["<na>", "<nolang>", "<eng>", "<deu>", "<asr>", "<pr>", "<notimestamps>",
            "<0.00>", "<0.02>", "<0.04>", "<sos>", "<eos>", "<sop>"]
SPEECH_LENGTH_S = 4


def _bpe(directory: Path) -> list[str]:
    import sentencepiece as spm

    phone_tokens = [f"/{p}/" for p in PHONES]
    corpus = ["".join(phone_tokens[i:] + phone_tokens[:i]) for i in range(len(PHONES))]
    corpus += ["the quick brown fox", "hello world", "phone recognition"]
    (directory / "data").mkdir(parents=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=str(directory / "data" / "bpe"),
        vocab_size=len(SPECIALS) + len(PHONES) + 30, model_type="bpe",
        user_defined_symbols=SPECIALS + phone_tokens, character_coverage=1.0,
        bos_id=-1, eos_id=-1, hard_vocab_limit=False, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=str(directory / "data" / "bpe.model"))
    return ["<blank>"] + [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def build_tiny_powsm(directory: Path, ctc: bool = False) -> Path:
    """Write config.yaml, model.pth and data/bpe.model under `directory`."""
    import torch
    import yaml

    from deployments.pronunciation.backends.powsm import prepare_espnet_import

    prepare_espnet_import()
    directory.mkdir(parents=True, exist_ok=True)
    token_list = _bpe(directory)
    common = {
        "token_list": token_list, "token_type": "bpe",
        "bpemodel": "data/bpe.model",  # relative, as in released configs
        "input_size": None, "frontend": "default",
        "frontend_conf": {"n_fft": 400, "hop_length": 160, "n_mels": 16, "fs": 16000},
        "specaug": None, "normalize": "utterance_mvn", "normalize_conf": {},
        "preencoder": None, "postencoder": None, "ctc_conf": {}, "init": None,
        "preprocessor_conf": {
            "notime_symbol": "<notimestamps>", "first_time_symbol": "<0.00>",
            "last_time_symbol": "<0.04>", "fs": 16000, "speech_length": SPEECH_LENGTH_S,
            "speech_resolution": 0.02},
    }
    if ctc:
        from espnet2.tasks.s2t_ctc import S2TTask

        config = {**common, "model": "espnet_ctc", "model_conf": {},
                  "encoder": "e_branchformer_ctc",
                  "encoder_conf": {"output_size": 16, "attention_heads": 2,
                                   "cgmlp_linear_units": 32, "linear_units": 32,
                                   "num_blocks": 2, "input_layer": "conv2d8",
                                   "interctc_layer_idx": [1], "interctc_use_conditioning": True},
                  "promptencoder": "transformer",
                  "promptencoder_conf": {"output_size": 16, "attention_heads": 2,
                                         "linear_units": 32, "num_blocks": 1}}
    else:
        from espnet2.tasks.s2t import S2TTask

        config = {**common, "model": "espnet", "model_conf": {"ctc_weight": 0.3},
                  "encoder": "transformer",
                  "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                                   "num_blocks": 1, "input_layer": "conv2d"},
                  "decoder": "transformer",
                  "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1}}
    import argparse

    torch.manual_seed(0)
    model = S2TTask.build_model(argparse.Namespace(**config))
    emit = token_list.index(f"/{EMIT}/")
    with torch.no_grad():
        model.ctc.ctc_lo.bias[emit] += 50.0
        if not ctc:
            model.decoder.output_layer.bias[emit] += 50.0
    torch.save(model.state_dict(), directory / "model.pth")
    (directory / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                           encoding="utf-8")
    return directory
