"""Unit-test fixtures: no host needed."""

from __future__ import annotations

import pytest

from omni_sizefix import plugins


@pytest.fixture(autouse=True)
def fresh_plugin_manager(monkeypatch: pytest.MonkeyPatch):
    """Each test sees a freshly built plugin manager and a clean environment."""
    for var in (
        "OMNI_SIZEFIX_DISABLE",
        "OMNI_SIZEFIX_SHAPE",
        "OMNI_SIZEFIX_SIZE_POLICY",
        "OMNI_SIZEFIX_PLUGINS",
    ):
        monkeypatch.delenv(var, raising=False)
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()
