"""CTC GOP (ctc_gop.py) on posteriors whose answer is known: frames that say p, a, t."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deployments.pronunciation.ctc_gop import (
    align,
    log_likelihoods,
    phone_gops,
    substituted_log_likelihoods,
)

BLANK, P, A, T, B, E = range(6)
PHONES = [P, A, T, B, E]
#: what each frame says: p p _ a a _ _ t _
FRAMES = [P, P, BLANK, A, A, BLANK, BLANK, T, BLANK]


def posteriors(frames: list[int], vocabulary: int = 6, peak: float = 0.9) -> np.ndarray:
    probs = np.full((len(frames), vocabulary), (1 - peak) / (vocabulary - 1))
    probs[np.arange(len(frames)), frames] = peak
    return np.log(probs)


@pytest.mark.parametrize("labels", [[P, A, T], [B, A, T], [P, P, T], [A]])
def test_the_forward_pass_is_ctcs_likelihood(labels: list[int]) -> None:
    log_probs = posteriors(FRAMES)
    expected = -torch.nn.functional.ctc_loss(
        torch.tensor(log_probs).unsqueeze(1), torch.tensor([labels]),
        torch.tensor([len(FRAMES)]), torch.tensor([len(labels)]), blank=BLANK,
        reduction="sum").item()
    assert log_likelihoods(log_probs, np.array([labels]), BLANK)[0] == pytest.approx(expected)


def test_alignment_places_each_phone_on_its_frames() -> None:
    assert align(posteriors(FRAMES), [P, A, T], BLANK) == [(0, 2), (3, 5), (7, 8)]
    # too few frames: a repeated phone needs a blank between its two
    assert align(posteriors([P, P]), [P, P, P], BLANK) is None


def test_the_phones_heard_score_zero_and_a_substituted_one_scores_low() -> None:
    log_probs = posteriors(FRAMES)
    read = phone_gops(log_probs, [P, A, T], BLANK, PHONES)
    assert [g.lpr for g in read] == [0.0, 0.0, 0.0]
    assert [g.rival for g in read] == [None, None, None]
    assert all(g.gop == pytest.approx(0.0) for g in read)
    # the text says "b a t"; the frames say "p a t"
    b_at = phone_gops(log_probs, [B, A, T], BLANK, PHONES)
    assert b_at[0].lpr < -1.0 and b_at[0].rival == P and b_at[0].gop < -3.0
    assert [g.lpr for g in b_at[1:]] == [0.0, 0.0]
    # spans are contiguous and cover the phones' frames
    assert [(g.start, g.end) for g in b_at] == [(0, 3), (3, 7), (7, 8)]


def test_a_weaker_mismatch_scores_between() -> None:
    """A phone whose frames are half its own: its GOP lies between heard and replaced."""
    log_probs = posteriors(FRAMES)
    log_probs[0:2] = np.log(np.array([0.02, 0.45, 0.02, 0.02, 0.47, 0.02]))
    gops = phone_gops(log_probs, [P, A, T], BLANK, PHONES)
    replaced = phone_gops(posteriors(FRAMES), [B, A, T], BLANK, PHONES)
    assert replaced[0].lpr < gops[0].lpr < 0.0 and gops[0].rival == B


def test_a_long_reference_aligns_end_to_end() -> None:
    """100 phones (201 CTC states: past int8, which the backtrace once overflowed)."""
    tokens = [P, A, T, B, E] * 20
    frames = [f for token in tokens for f in (token, token, BLANK)]
    spans = align(posteriors(frames), tokens, BLANK)
    assert spans == [(3 * i, 3 * i + 2) for i in range(len(tokens))]
    gops = phone_gops(posteriors(frames), tokens, BLANK, PHONES)
    assert [g.lpr for g in gops] == [0.0] * len(tokens)


def test_one_phone_replaced_is_scored_exactly_without_a_forward_pass_each() -> None:
    """Every single replacement (rivals equal to a neighbour included, where CTC needs a
    blank between) against a full forward pass of the replaced sequence."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(30, 6)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    tokens = np.array([P, A, A, T, B, P])
    positions, rivals = zip(*[(i, r) for i in range(len(tokens)) for r in PHONES
                              if r != tokens[i]], strict=True)
    positions, rivals = np.array(positions), np.array(rivals)
    explicit = []
    for i, r in zip(positions, rivals, strict=True):
        variant = tokens.copy()
        variant[i] = r
        explicit.append(log_likelihoods(log_probs, variant.reshape(1, -1), BLANK)[0])
    own, replaced = substituted_log_likelihoods(log_probs, tokens, BLANK, positions, rivals)
    assert replaced == pytest.approx(np.array(explicit), abs=1e-9)
    assert own == pytest.approx(log_likelihoods(log_probs, tokens.reshape(1, -1), BLANK)[0])
