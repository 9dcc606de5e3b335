"""The G2P deployment class without Serve: its health probe and its batch knobs."""

from __future__ import annotations

import pytest

from deployments.g2p.config import G2PArgs
from deployments.g2p.deployment import G2P


@pytest.fixture(scope="module")
def g2p() -> G2P:
    # The user class under the decorator: what each replica instantiates.
    return G2P.func_or_class(G2PArgs(backends=["gruut", "espeak"]))


def test_the_health_check_probes_every_backend(g2p: G2P, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    g2p.check_health()  # both backends answer
    espeak = g2p._backends["espeak"]
    monkeypatch.setattr(espeak, "phonemize", lambda texts, language: [[] for _ in texts])
    with pytest.raises(RuntimeError, match="espeak G2P backend returned nothing"):
        g2p.check_health()

    def lost(texts: list[str], language: str) -> list:
        raise OSError("espeak-ng data directory is gone")

    monkeypatch.setattr(espeak, "phonemize", lost)
    with pytest.raises(OSError, match="data directory is gone"):
        g2p.check_health()


def test_batch_knobs_come_from_the_user_config_only(g2p: G2P) -> None:
    g2p.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.02})
    assert g2p._batched._get_max_batch_size() == 8
    assert g2p._batched._get_batch_wait_timeout_s() == 0.02
    g2p.reconfigure({"max_batch_size": 4})  # a key left out keeps its value
    assert (g2p._batched._get_max_batch_size(), g2p._batched._get_batch_wait_timeout_s()) \
        == (4, 0.02)
    with pytest.raises(ValueError, match="unknown G2P user_config keys.*max_batch"):
        g2p.reconfigure({"max_batch": 2})
    with pytest.raises(ValueError, match="max_batch_size must be a positive integer"):
        g2p.reconfigure({"max_batch_size": 0, "batch_wait_timeout_s": 0.5})
    # a refused config changes nothing, not even its valid half
    assert g2p._batched._get_batch_wait_timeout_s() == 0.02
