"""Pronunciation assessment: decode audio, recognise phones, score them against the
canonical phones of a reference text (from the G2P family)."""
