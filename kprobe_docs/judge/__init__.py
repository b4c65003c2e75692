"""Judging a run: markers in, a verdict out."""
