"""Which host is installed, whether it is supported, and which prompt shape it reads.

Nothing here imports a host module: versions come from distribution metadata and the
feature probe reads the installed stage-1 processor's source text.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from omni_sizefix import settings
from omni_sizefix.package import REPORTED_DISTRIBUTIONS, SUPPORTED_HOSTS
from omni_sizefix.settings import Shape

#: First vLLM-Omni release whose GLM-Image ``ar2diffusion`` reads ``mm_processor_kwargs``.
MM_KWARGS_SINCE = Version("0.20.0rc1")

#: The GLM-Image stage-1 processor inside a vLLM-Omni distribution.
GLM_IMAGE_PROCESSOR_FILE = "vllm_omni/model_executor/stage_input_processors/glm_image.py"


def installed_version(dist: str) -> str | None:
    """The installed version string of ``dist``, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def host_versions() -> dict[str, str | None]:
    """Installed versions of every distribution ``doctor`` reports."""
    return {dist: installed_version(dist) for dist in REPORTED_DISTRIBUTIONS}


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


@dataclass(frozen=True)
class ShapeDecision:
    """The prompt shape chosen for stage 1 and the reason for it."""

    shape: Shape
    reason: str


def probe_processor_source(dist: str = "vllm-omni") -> Shape | None:
    """Read the installed GLM-Image stage-1 processor and tell which shape it reads.

    Returns None when the file cannot be found or read.
    """
    try:
        path = metadata.distribution(dist).locate_file(GLM_IMAGE_PROCESSOR_FILE)
        source = path.read_text(encoding="utf-8")
    except (metadata.PackageNotFoundError, OSError, UnicodeDecodeError):
        return None
    if "def ar2diffusion" not in source:
        return None
    return Shape.MM_KWARGS if "mm_processor_kwargs" in source else Shape.TOP_LEVEL


def shape_for_version(version: str | None) -> ShapeDecision:
    """Map a vLLM-Omni version string to the shape its ``ar2diffusion`` reads.

    Final releases are mapped by number. Pre-, dev- and local builds (a git build such as
    the 0.19.0rc1 of some Dynamo containers) are checked with the source probe, because
    their number does not say which side of the change they were cut from.
    """
    if version is None:
        return ShapeDecision(Shape.BOTH, "vllm-omni is not installed")
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    if parsed is None or parsed.is_prerelease or parsed.local:
        probed = probe_processor_source()
        if probed is not None:
            return ShapeDecision(probed, f"vllm-omni {version}: probed its ar2diffusion source")
        if parsed is None:
            return ShapeDecision(Shape.BOTH, f"vllm-omni {version!r} is not a valid version")
    if parsed >= MM_KWARGS_SINCE:
        return ShapeDecision(Shape.MM_KWARGS, f"vllm-omni {version} >= {MM_KWARGS_SINCE}")
    return ShapeDecision(Shape.TOP_LEVEL, f"vllm-omni {version} < {MM_KWARGS_SINCE}")


def decide_shape() -> ShapeDecision:
    """The shape to write: ``OMNI_SIZEFIX_SHAPE`` when set, else the detected one."""
    forced = settings.shape_override()
    if forced is not None:
        return ShapeDecision(forced, f"{settings.SHAPE_VAR}={forced.value}")
    return shape_for_version(installed_version("vllm-omni"))
