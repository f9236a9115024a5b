"""Datasets: the built-in demo, downloads and preparation, and splits."""
