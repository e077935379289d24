"""The GLM-Image stage configs shipped with the package, and loading them like the host does.

Two files, one per schema:

``glm_image.legacy.yaml`` (``stage_args:``)
    Read by the stage-config loaders of ai-dynamo 1.1-1.4 (vLLM-Omni 0.16-0.27). The
    config decides stage 1's processor here; ``custom_process_input_func`` names
    vLLM-Omni's own ``ar2diffusion``, as vLLM-Omni's config does, so the file names nothing
    of this package and workers started with it still start once the package is removed
    or disabled. Where the release pair cannot run upstream's processor (ai-dynamo
    1.1-1.3), the plugin's run-time fix (``runtime.patches.stage_worker``) hands
    stage 1 ``omni_sizefix.processors.glm_image.ar2diffusion`` instead.
``glm_image.deploy.yaml`` (``stages:``)
    Read by the loaders of ai-dynamo 1.5+ (and 1.2-1.4 with vLLM-Omni >= 0.20.0). **The
    config does not decide stage 1's processor here**: vLLM-Omni takes the topology,
    including ``custom_process_input_func``, from its registered GLM-Image pipeline
    (``vllm_omni/model_executor/models/glm_image/pipeline.py``); a deploy YAML only
    overrides per-stage engine and sampling settings. Upstream's ``ar2diffusion`` is right
    on the hosts this schema is chosen for (it reads ``mm_processor_kwargs`` and the
    scaffold's preview grid, and ai-dynamo >= 1.4 dispatch its ``prompt`` parameter).

Both set stage-0 ``max_tokens`` to 4353: the 2048x2048 target grid, the largest preview grid
and EOS (``size_policy.MAX_SIDE``). Neither names a module of this package (rollback-safe:
``tests/unit/test_stage_config_output.py``).

Which schema fits (``decide_schema``) follows the stage-config loader call the installed
host's stage worker makes, as the probed host profile recorded it
(``omni_sizefix.tools.host_profile``, ``LoaderProbe``), and what the installed vLLM-Omni's
loaders read (``omni_reads``); no version is compared. By release, that is:

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

ai-dynamo 1.2/1.3 read a deploy YAML from vLLM-Omni 0.20.0 on, but cannot dispatch
upstream's processor by themselves, whichever schema names it; the run-time fix
(``omni_sizefix.runtime.patches.stage_worker``) swaps it in the stage-1 worker. 1.4
reads both. The legacy config is chosen so that 1.1-1.4 share one config.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from omni_sizefix.tools import host, host_profile
from omni_sizefix.tools.hosts import STAGE_WORKER_MODULE, UTILS_MODULE

LEGACY = "legacy"
DEPLOY = "deploy"
SCHEMAS = (LEGACY, DEPLOY)
MODELS = ("glm_image",)
#: The model Dynamo's GLM-Image launch script serves (a Hugging Face id or a local folder).
DEFAULT_HF_MODEL = "zai-org/GLM-Image"
#: vLLM-Omni's module holding its stage-config loaders.
OMNI_UTILS_MODULE = "vllm_omni.entrypoints.utils"


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


#: A stage's ``devices: "N"`` line in a shipped config (legacy: under ``runtime``).
_DEVICES_LINE = re.compile(r'^(\s+devices: )"[0-9,]+"$', re.M)
POD_PER_STAGE_NOTE = (
    "# Written by `omni-sizefix stage-config --pod-per-stage`: every stage runs in its own pod\n"
    '# (or container) that sees only its own GPU, so each stage\'s devices is "0".\n'
)


def config_text(model: str = "glm_image", schema: str = LEGACY, pod_per_stage: bool = False) -> str:
    """The shipped config's text; ``pod_per_stage``: every stage's ``devices`` set to ``"0"``.

    The shipped files give stage 1 device 1, as on one machine with two GPUs. In Kubernetes
    each stage worker is its own pod with one GPU, which it sees as device 0.
    """
    text = config_path(model, schema).read_text(encoding="utf-8")
    if not pod_per_stage:
        return text
    return POD_PER_STAGE_NOTE + _DEVICES_LINE.sub(r'\1"0"', text)


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


#: The loader calls a Dynamo stage worker makes (``HostLoader.kind``), as its probe records
#: them: ``load_stage_configs_from_yaml(path)``; ``load_and_resolve_stage_configs(model,
#: path, kwargs={})``, the same with ``trust_remote_code=``, or with ``deploy_config_path=``
#: instead of the path; Dynamo's own ``resolve_stage_configs``. ``OMNI``: no Dynamo.
YAML = "yaml"
RESOLVE_PATH = "resolve-path"
RESOLVE_PATH_TRUST = "resolve-path-trust"
RESOLVE_DEPLOY = "resolve-deploy"
DYNAMO_RESOLVE = "dynamo-resolve"
OMNI = "omni"


@dataclass(frozen=True)
class HostLoader:
    """The stage-config loader the installed host calls and the schemas it reads."""

    #: One of the call kinds above.
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


def omni_reads() -> tuple[str, ...]:
    """The schemas the installed vLLM-Omni's loader functions read (probed, no version).

    Legacy while it has ``load_stage_configs_from_yaml`` (removed in 0.28); deploy where
    ``load_and_resolve_stage_configs`` takes ``deploy_config_path`` (it then also reads a
    ``stages:`` file given as the legacy path). Raises LookupError when they do not import.
    """
    try:
        utils = importlib.import_module(OMNI_UTILS_MODULE)
    except ImportError as exc:
        raise LookupError(f"vLLM-Omni's loaders do not import: {exc}") from exc
    legacy = (LEGACY,) if callable(getattr(utils, "load_stage_configs_from_yaml", None)) else ()
    resolve = getattr(utils, "load_and_resolve_stage_configs", None)
    deploy = callable(resolve) and "deploy_config_path" in inspect.signature(resolve).parameters
    return (*legacy, *((DEPLOY,) if deploy else ()))


def _loader_kind(call: host_profile.LoaderProbe) -> str:
    """The kind of loader call the probe recorded (see ``HostLoader.kind``)."""
    if call.caller == f"{UTILS_MODULE}.resolve_stage_configs":
        return DYNAMO_RESOLVE
    if call.function == "load_stage_configs_from_yaml":
        return YAML
    if call.function == "load_and_resolve_stage_configs":
        if "deploy_config_path" in call.keywords:
            return RESOLVE_DEPLOY
        return RESOLVE_PATH_TRUST if "trust_remote_code" in call.keywords else RESOLVE_PATH
    raise LookupError(
        f"{call.call or call.function or 'no call'}: a stage-config loader call "
        "omni_sizefix does not know"
    )


def loader_from_profile(found: host_profile.HostProfile, reads: tuple[str, ...]) -> HostLoader:
    """The loader a probed host profile recorded, with the schemas it reads.

    ``reads``: what the installed vLLM-Omni's loaders read (``omni_reads``). Raises
    LookupError when the host has no stage-config loader call the probe could record.
    """
    omni = found.versions.get("vllm-omni")
    dynamo = found.versions.get("ai-dynamo")
    legacy = tuple(s for s in reads if s == LEGACY)
    if dynamo is None:
        return HostLoader(
            OMNI,
            f"vLLM-Omni {omni} without Dynamo: load_stage_configs_from_yaml",
            legacy,
            LEGACY if legacy else DEPLOY,
            f"no ai-dynamo installed; vLLM-Omni {omni} "
            + (
                "reads the legacy schema"
                if legacy
                else "reads only the deploy schema (give it to vLLM-Omni as --deploy-config)"
            ),
        )
    call = found.loader
    if call is None or not call.function:
        detail = call.detail if call is not None else "the host was not probed"
        raise LookupError(f"no stage-config loader call recorded: {detail}")
    kind = _loader_kind(call)
    # Where Dynamo hands the path over as deploy_config_path, the deploy schema is read.
    deploy = (DEPLOY,) if "deploy_config_path" in call.keywords else ()
    if kind == YAML:
        return HostLoader(
            kind,
            f"ai-dynamo {dynamo}: load_stage_configs_from_yaml(path)",
            legacy,
            LEGACY,
            f"ai-dynamo {dynamo} loads stage configs with load_stage_configs_from_yaml, "
            "which reads only the legacy stage_args schema",
        )
    if kind == RESOLVE_PATH:
        return HostLoader(
            kind,
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, path, kwargs={{}})",
            reads,
            LEGACY,
            f"ai-dynamo {dynamo} loads legacy configs by path (one config for ai-dynamo "
            "1.1-1.4); its stage-1 dispatch wants original_prompt, so the plugin swaps in "
            "its processor for vLLM-Omni's at run time",
        )
    if kind == RESOLVE_PATH_TRUST:
        return HostLoader(
            kind,
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, path, kwargs={{}}, "
            "trust_remote_code=...)",
            reads,
            LEGACY,
            f"ai-dynamo {dynamo} reads both schemas; the legacy one is the config "
            "ai-dynamo 1.1-1.3 read too",
        )
    if kind == RESOLVE_DEPLOY:
        return HostLoader(
            kind,
            f"ai-dynamo {dynamo}: load_and_resolve_stage_configs(model, kwargs={{}}, "
            "trust_remote_code=..., deploy_config_path=path)",
            deploy,
            DEPLOY,
            f"ai-dynamo {dynamo} passes the config as deploy_config_path (deploy schema only)",
        )
    return HostLoader(
        kind,
        f"ai-dynamo {dynamo}: {UTILS_MODULE}.resolve_stage_configs(model, ...)",
        deploy,
        DEPLOY,
        f"ai-dynamo {dynamo} resolves the config as a deploy config (deploy schema only)",
    )


def host_loader(found: host_profile.HostProfile | None = None) -> HostLoader:
    """Which stage-config loader the installed host calls: the call its probe recorded.

    ``found``: a probed host profile (default: this process's, ``omni_sizefix.tools.host``;
    probing imports the host once). Raises LookupError when vLLM-Omni is missing or the
    host makes no stage-config loader call the probe could record (no disaggregated omni
    path, a stage worker that does not import, ...).
    """
    found = found if found is not None else host.probed()
    if found.versions.get("vllm-omni") is None:
        raise LookupError("vllm-omni is not installed (or its version cannot be read)")
    return loader_from_profile(found, omni_reads())


def decide_schema(found: host_profile.HostProfile | None = None) -> SchemaDecision:
    """The shipped schema that fits the installed host (or ``found``), and why.

    Raises LookupError when the installed host reads neither shipped schema.
    """
    loader = host_loader(found)
    if loader.preferred not in loader.schemas and loader.kind != OMNI:
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
    if loader.kind == OMNI:
        utils = importlib.import_module(OMNI_UTILS_MODULE)
        return list(utils.load_stage_configs_from_yaml(str(path)))
    if loader.kind == DYNAMO_RESOLVE:
        resolve = importlib.import_module(UTILS_MODULE).resolve_stage_configs
        _, stages = resolve(
            hf_model, trust_remote_code=trust_remote_code, deploy_config_path=str(path)
        )
        return list(stages)
    stage_worker = importlib.import_module(STAGE_WORKER_MODULE)
    if loader.kind == YAML:
        return list(stage_worker.load_stage_configs_from_yaml(str(path)))
    load = stage_worker.load_and_resolve_stage_configs
    if loader.kind == RESOLVE_PATH:
        _, stages = load(hf_model, str(path), kwargs={})
    elif loader.kind == RESOLVE_PATH_TRUST:
        _, stages, _ = load(hf_model, str(path), kwargs={}, trust_remote_code=trust_remote_code)
    else:  # RESOLVE_DEPLOY
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
