"""Thin asset wiring, one module per pipeline layer."""
