"""notebooks/pronunciation.ipynb runs top to bottom against the pronunciation app (under
its route prefix, so every URL it uses is built from SERVE_BASE_URL)."""

from __future__ import annotations

import re

from tests.notebooks import outputs_text, run_notebook


def test_pronunciation_notebook(assess_base: str) -> None:
    nb = run_notebook("pronunciation.ipynb", assess_base)
    text = outputs_text(nb)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]

    assert "box.wav: 3.1" in text and "at 16000 Hz" in text  # the committed recording
    # the scores and the per-word table: "fox" mispronounced, at most one other word
    per, score = map(float, re.search(
        r"^PER (\d\.\d+)\s+accuracy \d\.\d+\s+score (\d+\.\d) / 100", text, re.M).groups())
    assert 0 < per < 0.6 and 0 < score < 100
    assert re.search(r"^fox\s+mispronounced\s+\d+\s+\d\.\d\d-\d\.\d\d  f ɑ k s -> .*b", text,
                     re.M), text
    rows = re.findall(r"^(\w+)\s+(correct|mispronounced|missing)\s+\d+ ", text, re.M)
    assert [word for word, _ in rows] == "the quick brown fox jumps over the lazy dog".split()
    flagged = re.search(r"^flagged: (.*)$", text, re.M).group(1).split(", ")
    assert "fox" in flagged and len(flagged) <= 2
    assert flagged == [word for word, verdict in rows if verdict != "correct"]
    # the picture: one matplotlib figure (coloured words over the word timeline)
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 1
    # the same verdicts through the runpod SDK's /run + /status, and "box" passes
    # against its own sentence
    assert f"COMPLETED - flagged: {', '.join(flagged)} - score {score}" in text
    assert re.search(r"^'box': correct \(\d+\); overall score \d+\.\d vs", text, re.M)
    # bad audio: 413 on the direct route, FAILED with the reason as a job
    assert "413 the audio lasts 21.0 s; the limit is 20 s" in text
    assert "FAILED the audio could not be decoded as WAV, FLAC, OGG or MP3" in text
