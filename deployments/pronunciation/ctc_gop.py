"""Goodness of pronunciation from a CTC model's frame posteriors (POWSM's CTC head).

The reference phones, as tokens, are force-aligned to the posteriors (Viterbi over CTC's
blank-separated label states) for their times. A phone's GOP is a log-likelihood ratio
over the whole utterance: log P(reference | audio) against the best log P of the
reference with that one phone replaced by a rival, summed over CTC's alignments (the
forward algorithm), so it needs no frame boundaries, which CTC's peaky posteriors leave
vague. Rivals are the phones most probable around the phone's aligned frames (a phone
that has no mass there cannot win). The ratio is capped at 0 (the reference at least as
likely as any rival) and divided by the phone's frames, like pocketsphinx's GOP. A
replaced sequence's likelihood comes from the reference's forward and backward variables
(`substituted_log_likelihoods`), not a forward pass of its own, which made GOP cost
twenty times as much (the family README has the figures).

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
    #: the likeliest rival (a token id) where it beat the reference, else None
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


def _alphas(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """CTC forward variables (T, B, 2L+1) of each row of `labels` (B, L), all of one
    length: log P(frames 0..t, in state s at t)."""
    states = _extended(labels, blank)
    skip = _skip_allowed(states, blank)
    alphas = np.full((log_probs.shape[0], *states.shape), -np.inf)
    alphas[0, :, 0] = log_probs[0, blank]
    alphas[0, :, 1] = log_probs[0, states[:, 1]]
    for t in range(1, log_probs.shape[0]):
        alpha = alphas[t - 1]
        one = np.concatenate([np.full((len(alpha), 1), -np.inf), alpha[:, :-1]], axis=1)
        two = np.concatenate([np.full((len(alpha), 2), -np.inf), alpha[:, :-2]], axis=1)
        two = np.where(skip, two, -np.inf)
        alphas[t] = np.logaddexp(np.logaddexp(alpha, one), two) + log_probs[t, states]
    return alphas


def _betas(log_probs: np.ndarray, tokens: np.ndarray, blank: int) -> np.ndarray:
    """CTC backward variables (T, 2L+1) of one label sequence: log P(frames t..T-1 | in
    state s at t), frame t's emission included."""
    extended = _extended(tokens.reshape(1, -1), blank)
    states, skip = extended[0], _skip_allowed(extended, blank)[0]
    n_frames, n_states = log_probs.shape[0], len(states)
    betas = np.full((n_frames, n_states), -np.inf)
    betas[-1, -2:] = log_probs[-1, states[-2:]]
    for t in range(n_frames - 2, -1, -1):
        after = betas[t + 1]
        one = np.concatenate([after[1:], [-np.inf]])
        two = np.where(np.concatenate([skip[2:], [False, False]]),
                       np.concatenate([after[2:], [-np.inf, -np.inf]]), -np.inf)
        betas[t] = np.logaddexp(np.logaddexp(after, one), two) + log_probs[t, states]
    return betas


def log_likelihoods(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """log P(labels[b] | audio) under CTC for each row of `labels` (B, L), all of one length
    (the forward algorithm, batched over rows)."""
    last = _alphas(log_probs, labels, blank)[-1]
    return np.logaddexp(last[:, -1], last[:, -2])


def substituted_log_likelihoods(log_probs: np.ndarray, tokens: np.ndarray, blank: int,
                                positions: np.ndarray, rivals: np.ndarray
                                ) -> tuple[float, np.ndarray]:
    """log P(`tokens` | audio), and log P(`tokens` with tokens[positions[n]] replaced by
    rivals[n] | audio) for each n, exactly, without a forward pass per variant. A path
    of the variant runs through the states before the replaced label as the reference's
    paths do (the reference's forward variables), stays on the replaced label for some
    frames, then runs through the states after it as the reference's do (its backward
    variables): only the stay is computed, one frame at a time for all variants at once."""
    n_frames, last = log_probs.shape[0], len(tokens) - 1
    alphas = _alphas(log_probs, tokens.reshape(1, -1), blank)[:, 0]
    betas = _betas(log_probs, tokens, blank)
    state = 2 * positions + 1
    # Entering the label at t: from the blank before it, or straight from the previous
    # label where the two differ (no blank needed between them); at frame 0, first only.
    from_prev = (positions > 0) & (rivals != tokens[np.maximum(positions - 1, 0)])
    enter = np.full((n_frames, len(positions)), -np.inf)
    enter[0] = np.where(positions == 0, 0.0, -np.inf)
    enter[1:] = np.logaddexp(alphas[:-1, state - 1],
                             np.where(from_prev, alphas[:-1, np.maximum(state - 2, 0)],
                                      -np.inf))
    # Leaving it after t: into the blank after it, or straight into the next label where
    # the two differ; at the last frame, only the last label may end the path.
    to_next = (positions < last) & (rivals != tokens[np.minimum(positions + 1, last)])
    leave = np.full((n_frames, len(positions)), -np.inf)
    leave[-1] = np.where(positions == last, 0.0, -np.inf)
    after = np.minimum(state + 2, betas.shape[1] - 1)
    leave[:-1] = np.logaddexp(betas[1:, state + 1],
                              np.where(to_next, betas[1:, after], -np.inf))
    emit = log_probs[:, rivals]
    stay = np.full(len(positions), -np.inf)
    total = np.full(len(positions), -np.inf)
    for t in range(n_frames):
        stay = emit[t] + np.logaddexp(stay, enter[t])
        total = np.logaddexp(total, stay + leave[t])
    return float(np.logaddexp(alphas[-1, -1], alphas[-1, -2])), total


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
        state -= int(back[t, state])
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
    rivals = []
    for i, (start, end) in enumerate(bounds):
        window = log_probs[max(0, start - 1):end + 1, candidates].max(axis=0)
        rivals.append([int(candidates[k]) for k in np.argsort(-window)
                       if candidates[k] != reference[i]][:RIVALS])
    positions = np.asarray([i for i, order in enumerate(rivals) for _ in order], dtype=np.int64)
    own, likelihoods = substituted_log_likelihoods(
        log_probs, reference, blank, positions,
        np.asarray([r for order in rivals for r in order], dtype=np.int64))
    best_per_frame = log_probs.max(axis=1)
    result, k = [], 0
    for i, ((start, end), (label_start, label_end)) in enumerate(zip(bounds, spans,
                                                                      strict=True)):
        tried = likelihoods[k:k + len(rivals[i])]
        k += len(rivals[i])
        gap = own - float(tried.max()) if len(tried) else 0.0
        frames = np.arange(label_start, label_end)
        gop = float(np.mean(log_probs[frames, reference[i]] - best_per_frame[frames]))
        result.append(PhoneGop(
            start=start, end=end, gop=gop, lpr=min(0.0, gap) / (end - start),
            rival=rivals[i][int(np.argmax(tried))] if len(tried) and gap < 0 else None))
    return result
