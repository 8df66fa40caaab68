"""Training: the loop every family shares (loop.py), shared pieces (common.py) and one task per family."""
