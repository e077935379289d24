"""The ``omni_sizefix`` logger, in vLLM's format when vLLM is present."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "omni_sizefix"


def adopt_vllm_format() -> bool:
    """Send our records through vLLM's own handlers, so they read like the worker's lines.

    Only when vLLM's logging is already set up (``vllm.logger`` imported) and the
    ``omni_sizefix`` logger has no handler of its own; vLLM is never imported here.
    Returns True when the handlers were adopted.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if logger.handlers or "vllm.logger" not in sys.modules:
        return False
    vllm_logger = logging.getLogger("vllm")
    if not vllm_logger.handlers:
        return False
    for handler in vllm_logger.handlers:
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(vllm_logger.getEffectiveLevel())
    logger.propagate = False
    return True
