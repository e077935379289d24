"""The GLM-Image stage configs shipped with the package, and loading them like the host does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

LEGACY = "legacy"
DEPLOY = "deploy"
SCHEMAS = (LEGACY, DEPLOY)
MODELS = ("glm_image",)


def config_dir() -> Path:
    """Folder holding the shipped YAML files (inside the wheel, or the source checkout)."""
    packaged = Path(str(resources.files("omni_sizefix"))) / "stage_configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "stage_configs"


def config_path(model: str = "glm_image", schema: str = LEGACY) -> Path:
    """Path of the shipped config for ``model`` in ``schema`` (legacy ``stage_args`` or deploy)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; shipped: {', '.join(MODELS)}")
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; one of {', '.join(SCHEMAS)}")
    return config_dir() / f"{model}.{schema}.yaml"


def load_with_host_loader(path: Path) -> list[Any]:
    """Load a stage config with the installed vLLM-Omni's legacy loader.

    Raises LookupError when the installed vLLM-Omni has no loader for that schema.
    """
    try:
        from vllm_omni.entrypoints.utils import load_stage_configs_from_yaml
    except ImportError as exc:
        raise LookupError(f"no legacy stage-config loader in this vLLM-Omni: {exc}") from exc
    return list(load_stage_configs_from_yaml(str(path)))
