"""The lead side: labels, lead attributes, survival, score trend, and the lead models."""
