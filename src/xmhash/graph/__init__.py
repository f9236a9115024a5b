"""Similarity graphs and communities."""
