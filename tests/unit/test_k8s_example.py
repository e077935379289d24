"""The Kubernetes example (``examples/k8s``) is a valid ``nvidia.com/v1beta1``
DynamoGraphDeployment and wires what disaggregated GLM-Image needs.

Validated against an excerpt of the upstream CRD's v1beta1 OpenAPI schema (vendored in
``tests/unit/k8s/``, source and commit in its header) with ``jsonschema``, plus the check
kubectl's strict field validation makes (no field the schema does not declare). No cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_sizefix.tools import stage_configs

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "k8s"
DGD = EXAMPLE / "glm-image-disagg.dgd.yaml"
CONFIGMAP = EXAMPLE / "glm-image-stage-config.configmap.yaml"
SCHEMA = Path(__file__).parent / "k8s" / "dynamographdeployment.v1beta1.schema.yaml"
OMNI_MODULE = ["-m", "dynamo.vllm.omni"]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(load(SCHEMA))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def undeclared_fields(document: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the schema does not declare (kubectl --validate=strict refuses them)."""
    if "(cut)" in schema.get("description", ""):
        return []  # a subtree the excerpt does not carry
    found: list[str] = []
    if isinstance(document, dict) and "properties" in schema:
        for key, value in document.items():
            if key not in schema["properties"]:
                found.append(f"{path}/{key}")
            else:
                found += undeclared_fields(value, schema["properties"][key], f"{path}/{key}")
    elif isinstance(document, list) and "items" in schema:
        for index, item in enumerate(document):
            found += undeclared_fields(item, schema["items"], f"{path}/{index}")
    return found


def components() -> dict[str, dict]:
    return {c["name"]: c for c in load(DGD)["spec"]["components"]}


def main_container(component: dict) -> dict:
    containers = component["podTemplate"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "main")


def omni_components() -> dict[str, dict]:
    """The components that run ``python3 -m dynamo.vllm.omni`` (router and stage workers)."""
    return {
        name: c for name, c in components().items() if main_container(c)["args"][:2] == OMNI_MODULE
    }


def arg(container: dict, flag: str) -> str | None:
    args = container["args"]
    return args[args.index(flag) + 1] if flag in args else None


def test_the_example_is_a_valid_v1beta1_dynamographdeployment() -> None:
    document = load(DGD)
    assert (document["apiVersion"], document["kind"]) == (
        "nvidia.com/v1beta1",
        "DynamoGraphDeployment",
    )
    assert schema_errors(document) == []
    assert undeclared_fields(document, load(SCHEMA)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["spec"]["components"][0].update(type="router"), "is not one of"),
        (lambda d: d["spec"]["components"][0].update(name="glm_image"), "does not match"),
        (
            lambda d: d["spec"]["components"][1]["podTemplate"]["spec"].pop("containers"),
            "containers",
        ),
        (lambda d: d["spec"]["components"][1].update(replicas=-1), "less than the minimum"),
    ],
)
def test_the_schema_refuses_a_broken_copy(change, expected: str) -> None:
    document = copy.deepcopy(load(DGD))
    change(document)
    errors = schema_errors(document)
    assert errors and any(expected in e for e in errors), errors


def test_a_misspelt_field_is_caught() -> None:
    document = copy.deepcopy(load(DGD))
    document["spec"]["components"][1]["podTemplate"]["spec"]["volume"] = []
    assert undeclared_fields(document, load(SCHEMA)) == [
        "/spec/components/1/podTemplate/spec/volume"
    ]


def test_router_and_both_stages_read_one_stage_config_from_the_configmap() -> None:
    omni = omni_components()
    roles = sorted(arg(main_container(c), "--stage-id") or "router" for c in omni.values())
    assert roles == ["0", "1", "router"]
    configmap = load(CONFIGMAP)
    paths, models = set(), set()
    for component in omni.values():
        container = main_container(component)
        assert ("--omni-router" in container["args"]) == (arg(container, "--stage-id") is None)
        path = arg(container, "--stage-configs-path")
        models.add(arg(container, "--model"))
        volumes = {v["name"]: v for v in component["podTemplate"]["spec"]["volumes"]}
        mounts = [
            m
            for m in container["volumeMounts"]
            if volumes[m["name"]].get("configMap", {}).get("name") == configmap["metadata"]["name"]
        ]
        assert len(mounts) == 1, component["name"]
        folder, _, key = path.rpartition("/")
        assert folder == mounts[0]["mountPath"] and key in configmap["data"]
        paths.add(path)
    assert len(paths) == 1 and len(models) == 1  # the same file and model everywhere


def test_the_configmap_is_what_stage_config_writes_and_outlives_the_package() -> None:
    data = load(CONFIGMAP)["data"]
    (text,) = data.values()
    assert text == stage_configs.config_text("glm_image", "deploy", pod_per_stage=True)
    config = yaml.safe_load(text)
    assert "omni_sizefix" not in yaml.safe_dump(config)  # nothing of the package is named
    # one GPU per stage pod, seen as device 0 (the shipped file gives stage 1 device 1)
    assert [s["devices"] for s in config["stages"]] == ["0", "0"]
    for name, component in omni_components().items():
        gpus = main_container(component).get("resources", {}).get("limits", {})
        is_stage = arg(main_container(component), "--stage-id") is not None
        assert gpus.get("nvidia.com/gpu") == ("1" if is_stage else None), name


def test_shared_memory_connector_pods_share_a_node_and_its_dev_shm() -> None:
    config = yaml.safe_load(next(iter(load(CONFIGMAP)["data"].values())))
    connectors = {c["name"] for c in config["connectors"].values()}
    assert connectors == {"SharedMemoryConnector"}  # what makes the placement necessary
    labels = set()
    for name, component in omni_components().items():
        template = component["podTemplate"]
        assert component.get("sharedMemorySize") == "0", name  # no private /dev/shm
        terms = template["spec"]["affinity"]["podAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert [t["topologyKey"] for t in terms] == ["kubernetes.io/hostname"], name
        selector = terms[0]["labelSelector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items(), name
        labels.add(tuple(sorted(selector.items())))
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        shm = [m for m in main_container(component)["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert len(shm) == 1 and volumes[shm[0]["name"]]["hostPath"]["path"] == "/dev/shm", name
    assert len(labels) == 1  # one group: router, stage 0 and stage 1 together


def test_every_omni_component_runs_the_same_image() -> None:
    images = {main_container(c)["image"] for c in components().values()}
    assert len(images) == 1
