"""The GLM-Image stage configs shipped with the package, and loading them like the host does.

Two files, one per schema:

``glm_image.legacy.yaml`` (``stage_args:``)
    Read by the stage-config loaders of ai-dynamo 1.1-1.4 (vLLM-Omni 0.16-0.27). **The
    config decides stage 1's processor here**: ``custom_process_input_func`` names
    ``omni_sizefix.processors.glm_image.ar2diffusion``, which is dispatched by every one of
    those Dynamo releases and delegates to vLLM-Omni's own processor.
``glm_image.deploy.yaml`` (``stages:``)
    Read by the loaders of ai-dynamo 1.5+ (and 1.2-1.4 with vLLM-Omni >= 0.20.0). **The
    config does not decide stage 1's processor here**: vLLM-Omni takes the topology,
    including ``custom_process_input_func``, from its registered GLM-Image pipeline
    (``vllm_omni/model_executor/models/glm_image/pipeline.py``); a deploy YAML only
    overrides per-stage engine and sampling settings. Upstream's ``ar2diffusion`` is right
    on the hosts this schema is chosen for (it reads ``mm_processor_kwargs`` and the
    scaffold's preview grid, and ai-dynamo >= 1.4 dispatch its ``prompt`` parameter).

Both set stage-0 ``max_tokens`` to 4353: the 2048x2048 target grid, the largest preview grid
and EOS (``size_policy.MAX_SIDE``).

Which schema fits (``decide_schema``), by the stage-config loader of the installed host:

============  ==================================================================  ======
ai-dynamo     loader its stage worker calls                                       schema
============  ==================================================================  ======
1.1.x         ``load_stage_configs_from_yaml(path)`` (legacy only)                legacy
1.2.x, 1.3.x  ``load_and_resolve_stage_configs(model, path, kwargs={})``          legacy
1.4.x         ``load_and_resolve_stage_configs(model, path, kwargs={},``          legacy
              ``trust_remote_code=...)``
1.5.x         ``load_and_resolve_stage_configs(model, kwargs={},``                deploy
              ``trust_remote_code=..., deploy_config_path=path)``
1.6+          ``dynamo.vllm.omni.utils.resolve_stage_configs(model, ...)``        deploy
none          vLLM-Omni alone: legacy while it has ``load_stage_configs_from_yaml``
              (< 0.28), else deploy
============  ==================================================================  ======

ai-dynamo 1.2/1.3 read a deploy YAML from vLLM-Omni 0.20.0 on, but cannot dispatch that
config's (upstream) processor by themselves; the run-time fix
(``omni_sizefix.runtime.patches.dynamo_stage_processor``) swaps it in the stage-1 worker, while the
legacy schema names the package's processor directly. 1.4 reads both. The legacy config is
chosen so that 1.1-1.4 share one config and one stage-1 path.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from omni_sizefix.runtime import host_profile

LEGACY = "legacy"
DEPLOY = "deploy"
SCHEMAS = (LEGACY, DEPLOY)
MODELS = ("glm_image",)
#: The model Dynamo's GLM-Image launch script serves (a Hugging Face id or a local folder).
DEFAULT_HF_MODEL = "zai-org/GLM-Image"

STAGE_WORKER_MODULE = "dynamo.vllm.omni.stage_worker"
UTILS_MODULE = "dynamo.vllm.omni.utils"

#: First vLLM-Omni whose ``load_and_resolve_stage_configs`` reads a ``stages:`` file given
#: as ``--stage-configs-path``.
DEPLOY_AUTODETECT_SINCE = Version("0.20.0")
#: First vLLM-Omni that ships the deploy schema for GLM-Image.
DEPLOY_SCHEMA_SINCE = Version("0.20.0rc1")
#: First vLLM-Omni without ``load_stage_configs_from_yaml`` (rejects ``stage_args``).
LEGACY_REMOVED_IN = Version("0.28.0")


def config_dir() -> Path:
    """Folder holding the shipped YAML files (inside the wheel, or the source checkout)."""
    packaged = Path(str(resources.files("omni_sizefix"))) / "data" / "stage_configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "stage_configs"


def config_path(model: str = "glm_image", schema: str = LEGACY) -> Path:
    """Path of the shipped config for ``model`` in ``schema`` (legacy ``stage_args`` or deploy)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; shipped: {', '.join(MODELS)}")
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; one of {', '.join(SCHEMAS)}")
    return config_dir() / f"{model}.{schema}.yaml"


def file_schema(path: str | Path) -> str:
    """``legacy`` for a ``stage_args:`` file, ``deploy`` for a ``stages:`` file."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if isinstance(data, dict) and "stage_args" in data:
        return LEGACY
    if isinstance(data, dict) and "stages" in data:
        return DEPLOY
    raise ValueError(f"{path}: neither a legacy (stage_args) nor a deploy (stages) config")


# --- which loader the installed host calls --------------------------------------------


@dataclass(frozen=True)
class HostLoader:
    """The stage-config loader the installed host calls and the schemas it reads."""

    #: ``dynamo-1.1``, ``dynamo-1.2``, ``dynamo-1.4``, ``dynamo-1.5``, ``dynamo-1.6``, ``omni``.
    kind: str
    description: str
    #: Schemas this loader reads with the installed vLLM-Omni.
    schemas: tuple[str, ...]
    #: The schema this package ships for it.
    preferred: str
    reason: str


@dataclass(frozen=True)
class SchemaDecision:
    """The schema that fits the installed host and the reason for it."""

    schema: str
    reason: str


def installed_version(dist: str) -> str | None:
    """The installed version of ``dist``, as this process's host profile found it."""
    return host_profile.profile().versions.get(dist)


def _version(dist: str) -> Version | None:
    raw = installed_version(dist)
    if raw is None:
        return None
    try:
        return Version(raw)
    except InvalidVersion:
        return None


def host_loader() -> HostLoader:
    """Which stage-config loader the installed host uses (versions only; imports nothing).

    Raises LookupError when vLLM-Omni is missing or the ai-dynamo release has no
    disaggregated omni path (< 1.1).
    """
    omni = _version("vllm-omni")
    if omni is None:
        raise LookupError("vllm-omni is not installed (or its version cannot be read)")
    legacy = (LEGACY,) if omni < LEGACY_REMOVED_IN else ()
    deploy = (DEPLOY,) if omni >= DEPLOY_SCHEMA_SINCE else ()
    dynamo = _version("ai-dynamo")
    if dynamo is None:
        preferred = LEGACY if legacy else DEPLOY
        return HostLoader(
            "omni",
            f"vLLM-Omni {omni} without Dynamo: load_stage_configs_from_yaml",
            legacy,
            preferred,
            f"no ai-dynamo installed; vLLM-Omni {omni} "
            + (
                "reads the legacy schema"
                if legacy
                else "reads only the deploy schema (give it to vLLM-Omni as --deploy-config)"
            ),
        )
    release = Version(dynamo.base_version)
    if release < Version("1.1"):
        raise LookupError(f"ai-dynamo {dynamo} has no disaggregated vLLM-Omni path (needs 1.1+)")
    if release < Version("1.2"):
        return HostLoader(
            "dynamo-1.1",
            f"ai-dynamo {dynamo}: load_stage_configs_from_yaml(path)",
            legacy,
            LEGACY,
            f"ai-dynamo {dynamo} loads stage configs with load_stage_configs_from_yaml, "
            "which reads only the legacy stage_args schema",
        )
    autodetect = (DEPLOY,) if omni >= DEPLOY_AUTODETECT_SINCE else ()
    if release < Version("1.4"):
        return HostLoader(
            "dynamo-1.2",
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, path, kwargs={{}})",
            (*legacy, *autodetect),
            LEGACY,
            f"ai-dynamo {dynamo} dispatches a stage-1 processor only when its 2nd parameter is "
            "named original_prompt; vLLM-Omni >= 0.20.0 names it prompt, and only the legacy "
            "schema lets the config name omni_sizefix's processor instead",
        )
    if release < Version("1.5"):
        return HostLoader(
            "dynamo-1.4",
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, path, kwargs={{}}, "
            "trust_remote_code=...)",
            (*legacy, *autodetect),
            LEGACY,
            f"ai-dynamo {dynamo} reads both schemas; the legacy one names omni_sizefix's "
            "processor, the same stage-1 path as ai-dynamo 1.1-1.3",
        )
    if release < Version("1.6"):
        return HostLoader(
            "dynamo-1.5",
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, kwargs={{}}, "
            "trust_remote_code=..., deploy_config_path=path)",
            deploy,
            DEPLOY,
            f"ai-dynamo {dynamo} passes the config as deploy_config_path (deploy schema only)",
        )
    return HostLoader(
        "dynamo-1.6",
        f"ai-dynamo {dynamo}: dynamo.vllm.omni.utils.resolve_stage_configs(model, ...)",
        deploy,
        DEPLOY,
        f"ai-dynamo {dynamo} resolves the config as a deploy config (deploy schema only)",
    )


def decide_schema() -> SchemaDecision:
    """The shipped schema that fits the installed host, and why.

    Raises LookupError when the installed host reads neither shipped schema.
    """
    loader = host_loader()
    if loader.preferred not in loader.schemas and loader.kind != "omni":
        raise LookupError(
            f"{loader.description} cannot read the {loader.preferred} schema with the "
            f"installed vLLM-Omni {installed_version('vllm-omni')}: unsupported release pair"
        )
    return SchemaDecision(loader.preferred, loader.reason)


def fitting_schema() -> str:
    """``legacy`` or ``deploy``: the shipped schema that fits the installed host."""
    return decide_schema().schema


def path_for_installed_host(model: str = "glm_image", schema: str | None = None) -> Path:
    """Path of the shipped config for ``model``; ``schema`` None: the one that fits."""
    return config_path(model, schema or fitting_schema())


# --- loading through the host's own loader ----------------------------------------------


def _call_host_loader(
    loader: HostLoader, path: Path, hf_model: str, trust_remote_code: bool
) -> list[Any]:
    if loader.kind == "omni":
        utils = importlib.import_module("vllm_omni.entrypoints.utils")
        return list(utils.load_stage_configs_from_yaml(str(path)))
    if loader.kind == "dynamo-1.6":
        resolve = importlib.import_module(UTILS_MODULE).resolve_stage_configs
        _, stages = resolve(
            hf_model, trust_remote_code=trust_remote_code, deploy_config_path=str(path)
        )
        return list(stages)
    stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    if loader.kind == "dynamo-1.1":
        return list(stage_worker.load_stage_configs_from_yaml(str(path)))
    load = stage_worker.load_and_resolve_stage_configs
    if loader.kind == "dynamo-1.2":
        _, stages = load(hf_model, str(path), kwargs={})
    elif loader.kind == "dynamo-1.4":
        _, stages, _ = load(hf_model, str(path), kwargs={}, trust_remote_code=trust_remote_code)
    else:  # dynamo-1.5
        _, stages, _ = load(
            hf_model,
            kwargs={},
            trust_remote_code=trust_remote_code,
            deploy_config_path=str(path),
        )
    return list(stages)


def load_with_host_loader(
    path: str | Path,
    *,
    hf_model: str = DEFAULT_HF_MODEL,
    trust_remote_code: bool = False,
) -> list[Any]:
    """Load a stage config exactly as the installed host's stage worker does.

    The call (function, arguments, tuple unpacking) is the one the installed ai-dynamo
    release makes in ``init_omni_stage``. The result feeds ``OmniStageWorker`` as is.
    ``hf_model`` matters only for the deploy schema: vLLM-Omni finds the pipeline from the
    model's config (``model_index.json`` for GLM-Image).

    Raises LookupError when the installed host's loader does not read this file's schema.
    """
    path = Path(path)
    schema = file_schema(path)
    loader = host_loader()
    if schema not in loader.schemas:
        raise LookupError(f"{loader.description} does not read the {schema} schema ({path.name})")
    return _call_host_loader(loader, path, hf_model, trust_remote_code)


def load_for_installed_host(
    model: str = "glm_image",
    schema: str | None = None,
    *,
    hf_model: str = DEFAULT_HF_MODEL,
    trust_remote_code: bool = False,
) -> tuple[Path, list[Any]]:
    """(path, stage configs) of the shipped config that fits, loaded by the host's loader."""
    path = path_for_installed_host(model, schema)
    return path, load_with_host_loader(path, hf_model=hf_model, trust_remote_code=trust_remote_code)


def stage_processor(stage_config: Any) -> str | None:
    """The ``custom_process_input_func`` a loaded stage config names (None: none)."""
    value = getattr(stage_config, "custom_process_input_func", None)
    if value is None and isinstance(stage_config, dict):
        value = stage_config.get("custom_process_input_func")
    return None if value is None else str(value)
