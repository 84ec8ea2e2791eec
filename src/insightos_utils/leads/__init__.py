"""The lead side: who is likely to convert, and what calling them is worth."""
