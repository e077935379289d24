"""Patches applied to host code. Each module documents its target, why, how, the
upstream change it mirrors and when it can be removed."""
