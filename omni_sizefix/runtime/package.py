"""The host releases this package supports: declared once, used by code, extra and docs.

``pyproject.toml`` repeats these ranges as the ``hosts`` extra and the README's
compatibility table is generated from the matrix report; ``tests/unit/test_package.py``
fails when the extra and this declaration drift apart.
"""

from __future__ import annotations

#: This package's version (``omni_sizefix.__version__``; the build reads it here).
__version__ = "0.2.0"

#: Distribution name -> PEP 440 specifier of the releases the patch is written for.
SUPPORTED_HOSTS: dict[str, str] = {
    "ai-dynamo": ">=1.1.0,<1.8",
    "vllm-omni": ">=0.16.0,<0.33",
}

#: Distributions reported by ``omni-sizefix doctor`` (informational, not gated).
REPORTED_DISTRIBUTIONS: tuple[str, ...] = (
    "ai-dynamo",
    "vllm",
    "vllm-omni",
    "torch",
    "transformers",
    "pluggy",
)
