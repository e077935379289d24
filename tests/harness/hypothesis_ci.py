"""pytest plugin (``-p hypothesis_ci``, used by ``noxfile.py``): Hypothesis without deadlines.

Cells share a loaded machine; a slow example there is not a failure. Without Hypothesis
installed this plugin does nothing.
"""

from __future__ import annotations

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - every cell installs test-tools.txt
    settings = None

if settings is not None:
    settings.register_profile("omni-sizefix-ci", deadline=None, print_blob=True)
    settings.load_profile("omni-sizefix-ci")
