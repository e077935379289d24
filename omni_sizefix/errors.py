"""Exceptions the plugin lets reach the host."""

from __future__ import annotations


class SizeRejected(ValueError):
    """A requested size the size policy refuses; the only error the plugin raises on purpose."""
