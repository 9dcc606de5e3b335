"""Pieces every model family shares: input errors, device choice, weight and input fetching."""
