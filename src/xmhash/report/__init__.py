"""Aggregation, tables, plots."""
