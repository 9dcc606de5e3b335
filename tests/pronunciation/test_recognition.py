"""pocketsphinx on the Festival fixtures, scored against gruut's canonical phones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deployments.common.errors import InputError
from deployments.pronunciation.backends import sphinx
from deployments.pronunciation.backends.sphinx import PocketsphinxBackend
from deployments.pronunciation.scoring import score
from deployments.pronunciation.types import AssessmentScores, CanonicalWord

FIXTURES = Path(__file__).parent / "fixtures"
FOX = "the quick brown fox jumps over the lazy dog"
OTHER = "my father will visit seven cities in the spring"


@pytest.fixture(scope="module")
def backend() -> PocketsphinxBackend:
    return PocketsphinxBackend()


def canonical(text: str) -> list[CanonicalWord]:
    from gruut import sentences

    return [CanonicalWord(word=w.text, phones=w.phonemes)
            for s in sentences(text, lang="en-us") for w in s if w.is_spoken]


def assess(backend: PocketsphinxBackend, name: str, text: str) -> AssessmentScores:
    audio, rate = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
    assert rate == 16_000
    return score(canonical(text), backend.recognize(audio, "en-us", text))


@pytest.mark.parametrize("name,own,other", [("fox", FOX, OTHER), ("other", OTHER, FOX)])
def test_own_sentence_beats_a_different_one(backend: PocketsphinxBackend, name: str, own: str,
                                            other: str) -> None:
    right, wrong = assess(backend, name, own), assess(backend, name, other)
    assert right.per <= wrong.per / 2, (right.per, wrong.per)
    assert right.score > wrong.score + 30, (right.score, wrong.score)


def test_box_recording_flags_fox(backend: PocketsphinxBackend) -> None:
    result = assess(backend, "box", FOX)
    flagged = [w.word for w in result.words if w.verdict != "correct"]
    assert "fox" in flagged and len(flagged) <= 2, [(w.word, w.score) for w in result.words]
    fox = next(w for w in result.words if w.word == "fox")
    # the aligner places the word, and its f fits the audio badly (a b was said)
    assert fox.start is not None and fox.end is not None and fox.start < fox.end
    f = next(p for p in result.phones if p.word_index == fox.index and p.expected == "f")
    assert f.confidence is not None and f.confidence < 0.2
    # ...while the same recording's own sentence passes "box"
    own = assess(backend, "box", FOX.replace("fox", "box"))
    assert next(w for w in own.words if w.word == "box").verdict == "correct"


@pytest.mark.parametrize("hypothesis", ["words", "phones"])
def test_hypothesis_does_not_come_from_the_reference(hypothesis: str) -> None:
    backend = PocketsphinxBackend(hypothesis=hypothesis)
    audio, _ = sf.read(FIXTURES / "box.wav", dtype="float32")
    with_text = backend.recognize(audio, "en-us", FOX)
    without = backend.recognize(audio, "en-us", None)
    # The text only adds an alignment; the phones heard are identical without it.
    assert [p.phone for p in with_text.phones] == [p.phone for p in without.phones]
    assert without.alignment is None and with_text.alignment is not None
    # and they hold the b the speaker said, not the reference's f
    assert "b" in [p.phone for p in with_text.phones]
    starts = [p.start for p in with_text.phones]
    assert starts == sorted(starts) and with_text.phones[-1].end <= 3.2


def test_auto_hypothesis(backend: PocketsphinxBackend) -> None:
    """"auto" (the default): the rival path's phones when a text is given (calibrated GOP
    judges the words), the phone loop's without one (the hypothesis alone judges them)."""
    audio, _ = sf.read(FIXTURES / "box.wav", dtype="float32")
    aligned = PocketsphinxBackend(hypothesis="aligned").recognize(audio, "en-us", FOX)
    loop = PocketsphinxBackend(hypothesis="phones").recognize(audio, "en-us", None)
    assert [p.phone for p in aligned.phones] != [p.phone for p in loop.phones]
    assert ([p.phone for p in backend.recognize(audio, "en-us", FOX).phones]
            == [p.phone for p in aligned.phones])
    assert ([p.phone for p in backend.recognize(audio, "en-us", None).phones]
            == [p.phone for p in loop.phones])


def test_rival_path_hears_the_substituted_phone(backend: PocketsphinxBackend) -> None:
    """The rival path (the text's phones, each replaceable by another of its kind) puts b
    where box.wav says b for fox's f; on fox.wav it keeps the f. Its phones, one per phone
    of the text, are the "aligned" hypothesis."""
    heard = {}
    for name in ("box", "fox"):
        audio, _ = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
        result = backend.recognize(audio, "en-us", FOX)
        fox = next(w for w in result.alignment if w.word == "fox")
        heard[name] = fox.phones[0].rival
        assert len(result.phones) == sum(len(w.phones) for w in result.alignment)
    assert heard == {"box": "b", "fox": None}


def test_aligner_picks_the_pronunciation_said(tmp_path: Path) -> None:
    """Each word is aligned by whichever of its dictionary pronunciations the audio fits,
    and GOP measures that one: with "fox" listed as B AA K S first and F AA K S second,
    fox.wav aligns its F (near 0, no rival) and box.wav its B."""
    from pocketsphinx import get_model_path

    lines = [line for line in Path(get_model_path("en-us/cmudict-en-us.dict"))
             .read_text(encoding="utf-8").splitlines()
             if line.split(" ", 1)[0].split("(", 1)[0] in FOX.split()
             and not line.startswith("fox")]
    dictionary = tmp_path / "two-foxes.dict"
    dictionary.write_text("\n".join(lines + ["fox B AA K S", "fox(2) F AA K S"]) + "\n",
                          encoding="utf-8")
    backend = PocketsphinxBackend(dictionary=str(dictionary))
    first = {}
    for name in ("fox", "box"):
        audio, _ = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
        result = backend.recognize(audio, "en-us", FOX)
        fox = next(w for w in result.alignment if w.word == "fox")
        first[name] = fox.phones[0]
        assert [p.phone for p in fox.phones[1:]] == ["ɑ", "k", "s"]
    assert first["fox"].phone == "f" and first["box"].phone == "b"
    assert first["fox"].lpr > -2 and first["fox"].rival is None
    # the first pronunciation alone (what the aligner took before) misfits fox.wav
    only_b = tmp_path / "one-fox.dict"
    only_b.write_text("\n".join(lines + ["fox B AA K S"]) + "\n", encoding="utf-8")
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    result = PocketsphinxBackend(dictionary=str(only_b)).recognize(audio, "en-us", FOX)
    forced_b = next(w for w in result.alignment
                    if w.word == "fox").phones[0]
    assert forced_b.phone == "b" and forced_b.lpr < -5


def test_frequency_warp_moves_a_voice_towards_the_model(
        backend: PocketsphinxBackend, evalset_sample: tuple[list[dict], dict[str, dict]]
) -> None:
    """Per recording, the warp under which the text fits best serves every pass: female
    slt's frequencies are scaled down (a factor above 1), male ked's and rms's scaled up
    or, now and then, left."""
    items, recognized = evalset_sample
    warps: dict[str, list[float]] = {}
    for it in items:
        if it["kind"] == "correct" and it["speaker"] in ("slt", "ked", "rms"):
            warps.setdefault(it["speaker"], []).append(recognized[it["id"]]["own"]["warp"])
    male = sorted(warps["ked"] + warps["rms"])
    assert min(warps["slt"]) > 1.0 and max(male) <= 1.0 and male[len(male) // 2] < 1.0, warps
    # no text, no alignment to choose by: the passes run unwarped and say so
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    assert backend.recognize(audio, "en-us", None).warp is None
    assert PocketsphinxBackend(warps=(1.0,)).recognize(audio, "en-us", FOX).warp == 1.0
    with pytest.raises(ValueError, match="warps"):
        PocketsphinxBackend(warps=())
    with pytest.raises(ValueError, match="warps"):
        PocketsphinxBackend(warps=(0.2, 1.0))


def test_best_fit_prefers_the_alignment_that_reaches_every_word() -> None:
    """Among the warps' alignments, one that stopped before the last word scores higher
    (fewer frames to lose score on) but does not win over one that reached it."""
    owner = {"w0v0p0": (0, "F"), "w1v0p0": (1, "B")}
    whole = [("sil_open", 0, 9, -10.0), ("w0v0p0", 10, 19, -400.0),
             ("w1v0p0", 20, 29, -500.0)]
    short = [("sil_open", 0, 9, -10.0), ("w0v0p0", 10, 29, -300.0)]
    better = [("sil_open", 0, 9, -10.0), ("w0v0p0", 10, 19, -350.0),
              ("w1v0p0", 20, 29, -450.0)]
    assert sphinx._best_fit([(short, 0.8), (whole, 1.0)], owner) == (whole, 1.0)
    assert sphinx._best_fit([(whole, 1.0), (better, 1.2), (short, 0.8)], owner) == (
        better, 1.2)


def test_gop_falls_back_to_the_phone_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rival pass does not reach the end, GOP is taken against the free loop."""
    backend = PocketsphinxBackend(hypothesis="aligned")
    monkeypatch.setattr(backend, "_rival", lambda *args: None)
    audio, _ = sf.read(FIXTURES / "box.wav", dtype="float32")
    result = backend.recognize(audio, "en-us", FOX)
    f = next(w for w in result.alignment if w.word == "fox").phones[0]
    assert f.lpr is not None and f.lpr < -5 and f.rival is None
    # no rival path, so the hypothesis is the loop's
    loop = PocketsphinxBackend(hypothesis="phones").recognize(audio, "en-us", None)
    assert [p.phone for p in result.phones] == [p.phone for p in loop.phones]


def test_unaligned_words_and_languages(backend: PocketsphinxBackend) -> None:
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    result = backend.recognize(audio, "en-us", FOX + " zqxv")
    assert any("zqxv" in w for w in result.warnings)
    assert result.alignment is not None and len(result.alignment) == 9
    with pytest.raises(InputError, match="only knows English"):
        backend.recognize(audio, "de", None)


def test_gop_of_the_swapped_phone(backend: PocketsphinxBackend) -> None:
    """GOP (forced phone vs the rival path, nats/frame) of fox's f: near 0 where f was
    said, far below where b was."""
    said_b = assess(backend, "box", FOX)
    said_f = assess(backend, "fox", FOX)
    gop = {name: next(p.gop for p in r.phones if p.expected == "f")
           for name, r in (("box", said_b), ("fox", said_f))}
    assert gop["box"] is not None and gop["fox"] is not None
    assert gop["box"] < -5 < -2 < gop["fox"], gop


@pytest.mark.parametrize("name", ["fox", "box"])
def test_forced_and_rival_scores_share_a_scale(backend: PocketsphinxBackend, name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Both passes are rescored the same way, in the same units: where the rival path kept
    a phone over the same frames between the same neighbours, it is the same triphone
    over the same frames, and the two passes give it the same score (the FSG search's
    own scores are in other units and contexts, so a pass left unrescored differs)."""
    seen: list[tuple[int, int, float, np.ndarray, list]] = []
    real = sphinx._aligned_phone

    def spy(arpabet, start, frames, score, denominator, path):  # noqa: ANN001, ANN202
        seen.append((start, frames, score, denominator, path))
        return real(arpabet, start, frames, score, denominator, path)

    monkeypatch.setattr(sphinx, "_aligned_phone", spy)
    audio, _ = sf.read(FIXTURES / f"{name}.wav", dtype="float32")
    backend.recognize(audio, "en-us", FOX)
    forced = {(start, frames): score for start, frames, score, *_ in seen}
    denominator, path = seen[0][3], seen[0][4]
    same = []
    for i in range(1, len(path) - 1):
        trio = path[i - 1:i + 2]
        spans = [(first, last - first + 1) for _, first, last, _ in trio]
        if not any(replaced for *_, replaced in trio) and all(s in forced for s in spans):
            _, first, last, _ = path[i]
            same.append((forced[spans[1]], float(denominator[first:last + 1].sum())))
    assert len(same) >= 3, same
    assert all(f == pytest.approx(r, rel=1e-6) for f, r in same), same


def test_phones_are_rescored_between_their_neighbours(backend: PocketsphinxBackend,
                                                      tmp_path: Path) -> None:
    """The FSG search scores each one-phone pseudo-word as if silence followed it; the
    state pass keeps its segmentation and scores each phone with its actual right
    neighbour, which fits a correct reading better."""
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    pcm = (audio * 32767).astype("<i2").tobytes()
    network = sphinx._Network(FOX.split(), backend._dictionary)
    dictionary = tmp_path / "phones.dict"
    dictionary.write_text("\n".join(network.lines) + "\n", encoding="utf-8")

    def phones(decoder: object, scale: float) -> dict[tuple[str, int, int], float]:
        return {(word, first, last): score / scale
                for word, first, last, score in sphinx._segments(decoder)
                if word in network.owner}

    decoder = backend._decoder(dictionary, 1.0)
    assert sphinx._fsg_search(decoder, "forced", network.final, network.transitions, pcm)
    before = phones(decoder, 1024.0)  # the FSG search's scores are unshifted
    assert sphinx._rescore(decoder, pcm)
    after = phones(decoder, 1.0)
    assert [k[:2] for k in after] == [k[:2] for k in before] and len(after) > 25
    same = after.keys() & before.keys()  # the state pass may move the last phone's end
    assert len(same) >= len(after) - 1
    rescored, fsg_only = sum(after[k] for k in same), sum(before[k] for k in same)
    assert rescored > 0.9 * fsg_only, (rescored, fsg_only)


def test_alignment_survives_long_silences(backend: PocketsphinxBackend) -> None:
    # pocketsphinx 5.1's word-then-state alignment failed on recordings like this one
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    rng = np.random.default_rng(0)
    pad = (rng.standard_normal(16_000) * 1e-3).astype("float32")
    result = backend.recognize(np.concatenate([pad, audio, pad]), "en-us", FOX)
    assert result.alignment is not None, result.warnings
    assert [w.word for w in result.alignment] == FOX.split()
    assert result.alignment[0].start >= 0.9 and result.alignment[-1].end <= 4.3


def test_unknown_hypothesis_is_refused() -> None:
    with pytest.raises(ValueError, match="hypothesis"):
        PocketsphinxBackend(hypothesis="letters")


def test_a_warp_holds_whatever_decoder_came_before(backend: PocketsphinxBackend) -> None:
    """pocketsphinx keeps the warp factor in process-wide statics: an unwarped decoder made
    between two at 0.8 left the second unwarped, so one recording's result depended on
    what the process had decoded before (a job and the direct route disagreed)."""
    audio, _ = sf.read(FIXTURES / "fox.wav", dtype="float32")
    pcm = (audio * 32767).astype("<i2").tobytes()

    def loop(warp: float) -> list[tuple[str, int, int]]:
        decoder = backend._free_loop(pcm, warp)  # alive while its segments are read
        return [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]

    warped, unwarped = loop(0.8), loop(1.0)
    assert warped != unwarped
    assert loop(0.8) == warped and loop(1.0) == unwarped
