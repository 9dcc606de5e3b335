"""Goodness of pronunciation from a CTC model's frame posteriors (POWSM's CTC head).

The reference phones, as tokens, are force-aligned to the posteriors (Viterbi over CTC's
blank-separated label states) for their times. A phone's GOP is a log-likelihood ratio
over the whole utterance: log P(reference | audio) against the best log P of the
reference with that one phone replaced by a rival, summed over CTC's alignments (the
forward algorithm), so it needs no frame boundaries, which CTC's peaky posteriors leave
vague. Rivals are the phones most probable around the phone's aligned frames (a phone
that has no mass there cannot win). The ratio is capped at 0 (the reference at least as
likely as any rival) and divided by the phone's frames, like pocketsphinx's GOP.

Pure numpy, no model: the backend hands in log-posteriors (frames x vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: rivals tried per phone: the most probable phone tokens around its frames
RIVALS = 8


@dataclass(frozen=True)
class PhoneGop:
    """One reference token: its frames [start, end), mean log-posterior against the best
    token per frame (<= 0), and its log-likelihood ratio per frame (<= 0)."""

    start: int
    end: int
    gop: float
    lpr: float
    #: the rival that came closest (a token id), or None where no rival came close
    rival: int | None


def _extended(labels: np.ndarray, blank: int) -> np.ndarray:
    """(B, L) label sequences -> (B, 2L+1) CTC states: blank, l1, blank, l2, ..., blank."""
    states = np.full((labels.shape[0], 2 * labels.shape[1] + 1), blank, dtype=np.int64)
    states[:, 1::2] = labels
    return states


def _skip_allowed(states: np.ndarray, blank: int) -> np.ndarray:
    """Where a path may jump two states (over a blank): into a label that differs from the
    label two states before."""
    allowed = np.zeros(states.shape, dtype=bool)
    allowed[:, 2:] = (states[:, 2:] != blank) & (states[:, 2:] != states[:, :-2])
    return allowed


def log_likelihoods(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """log P(labels[b] | audio) under CTC for each row of `labels` (B, L), all of one length:
    the forward algorithm over frames, batched over rows."""
    states = _extended(labels, blank)
    skip = _skip_allowed(states, blank)
    alpha = np.full(states.shape, -np.inf)
    alpha[:, 0] = log_probs[0, blank]
    alpha[:, 1] = log_probs[0, states[:, 1]]
    for t in range(1, log_probs.shape[0]):
        one = np.concatenate([np.full((len(alpha), 1), -np.inf), alpha[:, :-1]], axis=1)
        two = np.concatenate([np.full((len(alpha), 2), -np.inf), alpha[:, :-2]], axis=1)
        two = np.where(skip, two, -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, one), two) + log_probs[t, states]
    return np.logaddexp(alpha[:, -1], alpha[:, -2])


def align(log_probs: np.ndarray, tokens: Sequence[int], blank: int) -> list[tuple[int, int]] | None:
    """The best CTC path of `tokens`: for each token, the first and last+1 frame of its
    label state. None when the frames are too few for the tokens."""
    extended = _extended(np.asarray([tokens], dtype=np.int64), blank)
    states, skip = extended[0], _skip_allowed(extended, blank)[0]
    n_frames, n_states = log_probs.shape[0], len(states)
    score = np.full(n_states, -np.inf)
    score[0] = log_probs[0, blank]
    score[1] = log_probs[0, states[1]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, n_frames):
        one = np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        moves = np.stack([score, one, two])
        back[t] = np.argmax(moves, axis=0)
        score = moves[back[t], np.arange(n_states)] + log_probs[t, states]
    end = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    if not np.isfinite(score[end]):
        return None
    path = np.empty(n_frames, dtype=np.int64)
    state = end
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        state -= back[t, state]
    spans = []
    for i in range(len(tokens)):
        frames = np.flatnonzero(path == 2 * i + 1)
        spans.append((int(frames[0]), int(frames[-1]) + 1))
    return spans


def phone_gops(log_probs: np.ndarray, tokens: Sequence[int], blank: int,
               phone_tokens: Sequence[int]) -> list[PhoneGop] | None:
    """GOP of each of `tokens` (see the module's docstring); `phone_tokens`: the
    vocabulary's phone tokens, where rivals come from. None when the frames are too few."""
    spans = align(log_probs, tokens, blank)
    if spans is None:
        return None
    # Each token's span runs to the next token's first frame, so blanks count with it.
    bounds = [(start, spans[i + 1][0] if i + 1 < len(spans) else end)
              for i, (start, end) in enumerate(spans)]
    candidates = np.asarray(sorted(set(phone_tokens)), dtype=np.int64)
    reference = np.asarray(tokens, dtype=np.int64)
    rows, rivals = [reference], []
    for i, (start, end) in enumerate(bounds):
        window = log_probs[max(0, start - 1):end + 1, candidates].max(axis=0)
        order = [int(candidates[k]) for k in np.argsort(-window)
                 if candidates[k] != reference[i]][:RIVALS]
        rivals.append(order)
        for rival in order:
            row = reference.copy()
            row[i] = rival
            rows.append(row)
    likelihoods = log_likelihoods(log_probs, np.stack(rows), blank)
    best_per_frame = log_probs.max(axis=1)
    result, k = [], 1
    for i, ((start, end), (label_start, label_end)) in enumerate(zip(bounds, spans,
                                                                      strict=True)):
        tried = likelihoods[k:k + len(rivals[i])]
        k += len(rivals[i])
        gap = float(likelihoods[0] - tried.max()) if len(tried) else 0.0
        frames = np.arange(label_start, label_end)
        gop = float(np.mean(log_probs[frames, reference[i]] - best_per_frame[frames]))
        result.append(PhoneGop(
            start=start, end=end, gop=gop, lpr=min(0.0, gap) / (end - start),
            rival=rivals[i][int(np.argmax(tried))] if len(tried) and gap < 0 else None))
    return result
