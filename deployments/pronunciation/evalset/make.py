"""Make the pronunciation evaluation set: synthetic readings in two splits that share no voice.

    python -m deployments.pronunciation.evalset.make --out /tmp/pron-evalset
    python -m deployments.pronunciation.evalset.make --out DIR --split heldout --per-voice 10

Needs Debian's `festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite
espeak-ng` (only to make the set; the service and the tests need none of them).

Every reference sentence (sentences.txt: even lines calibration, odd lines held-out) is
read by each voice of its split three ways:

- `correct`: the sentence itself. It is also assessed against another sentence of the
  same split (`other`), the PER control.
- `word`: one word replaced by an unrelated word (the replacement is synthesized in the
  sentence, so coarticulation is natural).
- `phone`: one word replaced by a dictionary word that differs from it by exactly one
  phone (a minimal pair such as fox/box, from CMUdict), so one phone is substituted.

Each reading gets, from a generator seeded by its id, a speaking rate (duration stretch
0.85/1.0/1.2, espeak-ng 140/165/190 words a minute), a sample rate from 8 to 48 kHz,
mono or stereo, WAV/FLAC/OGG/MP3, and light noise (none, 30 or 20 dB SNR, white or
brown). The audio and a `manifest.jsonl` go to `--out`; nothing of it belongs in git.
`--sample DIR` writes the committed test sample (tests/pronunciation/fixtures/evalset/):
every held-out voice reading four sentences drawn at random, 60 readings.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SENTENCES = HERE / "sentences.txt"


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str  # festival, flite, espeak
    ident: str  # Festival voice function, flite voice, espeak-ng voice
    #: the person (or diphone set) behind it: flite's and Festival's kal are one speaker,
    #: so are flite's slt and Festival's slt HTS; a split never shares a speaker
    speaker: str


VOICES = [
    Voice("festival-kal", "festival", "voice_kal_diphone", "kal"),
    Voice("flite-kal", "flite", "kal", "kal"),
    Voice("flite-kal16", "flite", "kal16", "kal"),
    Voice("flite-awb", "flite", "awb", "awb"),
    Voice("espeak-en-us", "espeak", "en-us", "espeak-en-us"),
    Voice("festival-slt-hts", "festival", "voice_cmu_us_slt_arctic_hts", "slt"),
    Voice("flite-slt", "flite", "slt", "slt"),
    Voice("festival-ked", "festival", "voice_ked_diphone", "ked"),
    Voice("flite-rms", "flite", "rms", "rms"),
    Voice("espeak-en-gb", "espeak", "en-gb", "espeak-en-gb"),
]
SPLITS = {
    "calibration": {"kal", "awb", "espeak-en-us"},
    "heldout": {"slt", "ked", "rms", "espeak-en-gb"},
}
KINDS = ("correct", "word", "phone")
STRETCH = (0.85, 1.0, 1.2)
ESPEAK_WPM = {0.85: 190, 1.0: 165, 1.2: 140}
SAMPLE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
           "mp3": ("MP3", "MPEG_LAYER_III")}
SNR_DB = (None, 30.0, 20.0)


@dataclass
class Item:
    id: str
    split: str
    voice: str
    speaker: str
    kind: str
    reference: str  # what the speaker was asked to say (assessed against)
    spoken: str  # what the synthesizer read
    other: str  # another sentence of the split: the PER control
    changed_word: int | None  # index of the substituted word in `reference`
    stretch: float
    sample_rate: int
    channels: int
    format: str
    snr_db: float | None
    noise: str
    file: str = ""
    #: libsndfile's compression level for OGG/MP3/FLAC (0 best quality .. 1 smallest)
    compression: float | None = None


def split_of(voice: Voice) -> str:
    return next(s for s, speakers in SPLITS.items() if voice.speaker in speakers)


def sentences(split: str | None = None) -> list[str]:
    lines = [line.strip() for line in SENTENCES.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    if split is None:
        return lines
    parity = 0 if split == "calibration" else 1
    return [s for i, s in enumerate(lines) if i % 2 == parity]


@lru_cache(maxsize=1)
def cmudict() -> dict[str, list[tuple[str, ...]]]:
    from pocketsphinx import get_model_path

    entries: dict[str, list[tuple[str, ...]]] = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            head, *phones = line.split()
            entries.setdefault(head.split("(", 1)[0], []).append(tuple(phones))
    return entries


VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH",
          "UW"}
#: words too short or too weak to carry a substitution one can hear
FUNCTION_WORDS = {"a", "an", "the", "in", "on", "at", "to", "of", "for", "and", "so", "up",
                  "is", "it", "its", "he", "she", "we", "my", "his", "our", "i", "that", "with",
                  "when", "some", "out", "this", "their", "too", "from", "about", "into",
                  "more", "all", "over", "under", "after", "before", "every", "many", "last",
                  "because", "during"}


@lru_cache(maxsize=1)
def _one_phone_index() -> dict[tuple[int, tuple[str, ...]], list[str]]:
    """(position, pronunciation with that phone blanked) -> words: minimal pairs in O(1)."""
    index: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    for word, prons in cmudict().items():
        if len(prons) != 1 or not word.isalpha() or len(word) < 3:
            continue
        pron = prons[0]
        for k in range(len(pron)):
            index.setdefault((k, pron[:k] + ("*",) + pron[k + 1:]), []).append(word)
    return index


def minimal_pairs(word: str, vocabulary: set[str]) -> list[str]:
    """Dictionary words that differ from every pronunciation of `word` by one substituted
    phone: a consonant for a consonant or a vowel for a vowel (so syllables stay)."""
    prons = cmudict().get(word, [])
    found: list[str] = []
    for pron in prons:
        for k in range(len(pron)):
            for cand in _one_phone_index().get((k, pron[:k] + ("*",) + pron[k + 1:]), []):
                if cand == word or cand in found:
                    continue
                other = cmudict()[cand][0]
                if any(other == p for p in prons):
                    continue  # a homophone of some pronunciation of the word
                if (pron[k] in VOWELS) != (other[k] in VOWELS):
                    continue
                found.append(cand)
    # words the sentences use, then the rest, shortest spelling first: common words first
    return sorted(found, key=lambda w: (w not in vocabulary, len(w), w))


def phone_distance(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
    return d[len(b)]


def substitute(sentence: str, kind: str, rng: random.Random,
               vocabulary: list[str]) -> tuple[str, int | None]:
    words = sentence.split()
    if kind == "correct":
        return sentence, None
    content = [i for i, w in enumerate(words) if w not in FUNCTION_WORDS]
    rng.shuffle(content)
    for i in content:
        target = cmudict()[words[i]][0]
        if kind == "phone":
            pairs = minimal_pairs(words[i], set(vocabulary))[:6]
            if not pairs:
                continue
            replacement = rng.choice(pairs)
        else:
            options = [w for w in vocabulary if w not in FUNCTION_WORDS and w != words[i]
                       and abs(len(cmudict()[w][0]) - len(target)) <= 1
                       and phone_distance(cmudict()[w][0], target) >= max(2, len(target) - 1)]
            if not options:
                continue
            replacement = rng.choice(sorted(options))
        return " ".join(words[:i] + [replacement] + words[i + 1:]), i
    raise ValueError(f"no {kind} substitution for {sentence!r}")


def items(split: str, per_voice: int | None = None, seed: int = 0) -> Iterator[Item]:
    pool = sentences(split)
    vocabulary = sorted({w for s in sentences() for w in s.split()})
    for voice in VOICES:
        if split_of(voice) != split:
            continue
        chosen = pool if per_voice is None else pool[:per_voice]
        for n, sentence in enumerate(chosen):
            for kind in KINDS:
                ident = f"{voice.name}-{n:02d}-{kind}"
                rng = random.Random(f"{seed}-{ident}")
                spoken, changed = substitute(sentence, kind, rng, vocabulary)
                other = pool[(pool.index(sentence) + 1 + rng.randrange(len(pool) - 1))
                             % len(pool)]
                fmt = rng.choice(sorted(FORMATS))
                yield Item(id=ident, split=split, voice=voice.name, speaker=voice.speaker,
                           kind=kind, reference=sentence, spoken=spoken, other=other,
                           changed_word=changed, stretch=rng.choice(STRETCH),
                           sample_rate=rng.choice(SAMPLE_RATES), channels=rng.choice((1, 2)),
                           format=fmt, snr_db=rng.choice(SNR_DB),
                           noise=rng.choice(("white", "brown")))


def synthesize(voice: Voice, text: str, stretch: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        if voice.engine == "festival":
            src = Path(tmp) / "in.txt"
            src.write_text(text + "\n", encoding="utf-8")
            cmd = ["text2wave", "-eval", f"({voice.ident})", "-eval",
                   f"(Parameter.set 'Duration_Stretch {stretch})", "-otype", "riff", str(src),
                   "-o", str(out)]
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.ident, "--setf", f"duration_stretch={stretch}",
                   "-t", text, "-o", str(out)]
        else:
            cmd = ["espeak-ng", "-v", voice.ident, "-s", str(ESPEAK_WPM[stretch]), "-w",
                   str(out), text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        audio, rate = sf.read(out, dtype="float64", always_2d=True)
    return audio[:, 0], rate


def render(item: Item, voice: Voice, out_dir: Path) -> Item:
    """Synthesize, then resample, add noise, make stereo and encode as the item says."""
    import soundfile as sf
    import soxr

    audio, rate = synthesize(voice, item.spoken, item.stretch)
    rng = np.random.default_rng(zlib.crc32(item.id.encode()))
    audio = audio / max(np.max(np.abs(audio)), 1e-9) * 0.5
    pad = np.zeros(int(0.25 * rate))
    audio = np.concatenate([pad, audio, pad])
    if item.sample_rate != rate:
        audio = soxr.resample(audio, rate, item.sample_rate, quality="HQ")
    if item.snr_db is not None:
        noise = rng.standard_normal(len(audio))
        if item.noise == "brown":
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # no DC drift
        speech_power = np.mean(audio[np.abs(audio) > 0.01] ** 2)
        noise *= np.sqrt(speech_power / 10 ** (item.snr_db / 10) / np.mean(noise**2))
        audio = audio + noise
    if item.channels == 2:
        # a second microphone: a little quieter, with its own noise floor
        right = 0.8 * audio + rng.standard_normal(len(audio)) * 1e-4
        audio = np.stack([audio, right], axis=1)
    audio = np.clip(audio, -0.99, 0.99)
    container, subtype = FORMATS[item.format]
    path = out_dir / f"{item.id}.{item.format}"
    extra = {} if item.compression is None else {"compression_level": item.compression}
    sf.write(path, audio, item.sample_rate, format=container, subtype=subtype, **extra)
    item.file = path.name
    return item


def write(split_names: list[str], out_dir: Path, per_voice: int | None, seed: int,
          jobs: int) -> list[Item]:
    out_dir.mkdir(parents=True, exist_ok=True)
    voices = {v.name: v for v in VOICES}
    todo = [it for split in split_names for it in items(split, per_voice, seed)]
    with ThreadPoolExecutor(jobs) as pool:
        done = list(pool.map(lambda it: render(it, voices[it.voice], out_dir), todo))
    with open(out_dir / "manifest.jsonl", "w", encoding="utf-8") as f:
        for it in done:
            f.write(json.dumps(asdict(it)) + "\n")
    return done


#: sentences per held-out voice in the committed sample (three readings each)
SAMPLE_SENTENCES = 4


def write_sample(out_dir: Path, seed: int, per_voice: int = SAMPLE_SENTENCES) -> list[Item]:
    """Every held-out voice reading `per_voice` sentences drawn at random (not the short
    ones, not the easy ones): the readings as the full set has them, in their own rate,
    channels, noise, speed and codec (WAV kept losslessly as FLAC, to keep git small), so
    the sample's figures estimate the set's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    voices = {v.name: v for v in VOICES}
    heldout = sentences("heldout")
    drawn = {voice.name: random.Random(f"{seed}-sample-{voice.name}").sample(heldout, per_voice)
             for voice in VOICES if split_of(voice) == "heldout"}
    picked = [it for it in items("heldout", None, seed) if it.reference in drawn[it.voice]]
    for it in picked:  # lossless readings as FLAC, compressed hardest: the same samples
        if it.format in ("wav", "flac"):
            it.format, it.compression = "flac", 1.0
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda it: render(it, voices[it.voice], out_dir), picked))
    with open(out_dir / "manifest.jsonl", "w", encoding="utf-8") as f:
        for it in done:
            f.write(json.dumps(asdict(it)) + "\n")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="directory for the audio and manifest.jsonl")
    parser.add_argument("--split", choices=("calibration", "heldout", "all"), default="all")
    parser.add_argument("--per-voice", type=int, default=None,
                        help="sentences per voice (default: all of the split's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=Path, help="write the small committed sample here")
    args = parser.parse_args()
    for tool in ("text2wave", "flite", "espeak-ng"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install festival flite espeak-ng "
                         "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)")
    if args.sample:
        done = write_sample(args.sample, args.seed)
        print(f"{len(done)} sample recordings in {args.sample}")
    if args.out:
        names = ["calibration", "heldout"] if args.split == "all" else [args.split]
        done = write(names, args.out, args.per_voice, args.seed, args.jobs)
        print(f"{len(done)} recordings in {args.out}")
    if not args.out and not args.sample:
        parser.error("give --out and/or --sample")


if __name__ == "__main__":
    main()
