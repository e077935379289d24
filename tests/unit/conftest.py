"""Unit-test fixtures: no host needed."""

from __future__ import annotations

import logging

import pytest

from omni_sizefix.runtime import host_profile, log, plugins


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
    host_profile.clear()  # tests change versions and the environment
    yield
    plugins.reset_plugin_manager()
    host_profile.clear()


@pytest.fixture(autouse=True)
def plain_logging(monkeypatch: pytest.MonkeyPatch):
    """Records reach pytest's caplog: vLLM's handlers are not adopted in unit tests
    (they would be in a host cell, where vLLM is importable; see omni_sizefix.runtime.log)."""
    logger = logging.getLogger(log.LOGGER_NAME)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    monkeypatch.setattr(log, "adopt_vllm_format", lambda: False)
    logger.handlers.clear()
    logger.propagate = True
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])
