"""pytest plugin (``-p installed_check``, used by ``noxfile.py``): the run fails unless the
``omni_sizefix`` under test is the installed distribution, not the source tree that a stray
``sys.path`` entry could shadow it with."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest


def pytest_sessionfinish(session: pytest.Session) -> None:
    spec = importlib.util.find_spec("omni_sizefix")
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    try:
        dist = metadata.distribution("omni-sizefix")
        expected = Path(str(dist.locate_file("omni_sizefix/__init__.py"))).resolve()
    except metadata.PackageNotFoundError:
        expected = None
    if origin is None or origin != expected:
        print(f"\ninstalled_check: omni_sizefix came from {origin}, not from {expected}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
