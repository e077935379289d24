"""Rollback: the same topology, started again after ``pip uninstall omni-sizefix``, starts and
serves with the host's own behaviour.

The stage config is the one an operator would put in a ConfigMap
(``omni-sizefix stage-config --output FILE``), written outside the installed package. The
first start runs with the plugin; then the distribution is uninstalled the way pip does it
(every file its RECORD lists, the ``omni-sizefix`` script and the ``.dist-info`` included,
is moved out of the environment; the test puts them back afterwards), and the same
topology is started again from the same file.

FAKE: only the two stage engines (``omni_sizefix.tools.live.fake_engines``, started by
``python -m omni_sizefix.tools.live.fake_worker``). That launcher is test support and lives
in this package, so for the second start it is imported from a copy of the package's source
on ``PYTHONPATH``: a copy has no ``.dist-info``, hence no entry point, so neither vLLM's nor
vLLM-Omni's plugin loader can find the plugin, and it leaves out ``omni_sizefix.processors``
(the only names a stage config could carry). The test checks that: no worker logs an
``omni-sizefix:`` line, the cell no longer lists the distribution, and the copy has no
``omni_sizefix.processors``. With 0.1.0's shipped legacy config (which named
``omni_sizefix.processors.glm_image.ar2diffusion``) the second start fails.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from live_expect import image_outcome

from omni_sizefix.tools.live import client, served

pytestmark = pytest.mark.live

DIST = "omni-sizefix"
#: Every frontend takes it (OpenAI enum) and every config's stage-0 budget holds it.
SIZE = "1024x1024"
#: The plugin's own log lines start with this (start-up, kill switch, warnings).
PLUGIN_LINE = "omni-sizefix:"
#: Modules the test process still needs once the distribution is gone (imported now).
NEEDED = (
    "omni_sizefix.tools.simulation.weightless",
    "omni_sizefix.tools.stage_configs",
    "omni_sizefix.tools.live.topology",
    "omni_sizefix.tools.live.client",
)


def _top_level(files: list[metadata.PackagePath], site: Path) -> list[Path]:
    """The paths pip removes for these RECORD entries: top-level folders inside
    site-packages whole (``__pycache__`` included), anything outside it file by file."""
    found: dict[Path, None] = {}
    for entry in files:
        path = Path(entry.locate()).resolve()
        try:
            relative = path.relative_to(site)
        except ValueError:
            found[path] = None  # e.g. bin/omni-sizefix
            continue
        found[site / relative.parts[0]] = None
    return [p for p in found if p.exists()]


@pytest.fixture
def uninstalled(tmp_path: Path) -> Iterator[Path]:
    """Uninstall omni-sizefix from this cell for the test; yields a source copy for the
    fake-engine launcher. Everything is put back afterwards."""
    dist = metadata.distribution(DIST)
    site = Path(str(dist.locate_file(""))).resolve()
    for module in NEEDED:
        importlib.import_module(module)
    source = tmp_path / "launcher-source"
    # Without ``processors`` (the names stage configs may carry) and the shipped configs: a
    # config naming ``omni_sizefix.processors.*`` must fail here as after a real uninstall.
    shutil.copytree(
        site / "omni_sizefix",
        source / "omni_sizefix",
        ignore=shutil.ignore_patterns("data", "processors"),
    )
    stash = tmp_path / "uninstalled"
    moved: list[tuple[Path, Path]] = []
    try:
        for index, path in enumerate(_top_level(list(dist.files or []), site)):
            target = stash / str(index) / path.name
            target.parent.mkdir(parents=True)
            shutil.move(str(path), str(target))
            moved.append((path, target))
        yield source
    finally:
        for original, target in reversed(moved):
            shutil.move(str(target), str(original))


def _still_installed(extra_path: Path | None = None) -> dict:
    """What a fresh interpreter of this cell finds: the distribution and its entry point."""
    code = (
        "import json\nfrom importlib import metadata\n"
        "try:\n    metadata.distribution('omni-sizefix'); dist = True\n"
        "except metadata.PackageNotFoundError:\n    dist = False\n"
        "eps = [e.value for g in ('vllm.general_plugins', 'vllm_omni.general_plugins')"
        " for e in metadata.entry_points(group=g) if e.name == 'omni_sizefix']\n"
        "print(json.dumps({'dist': dist, 'entry_points': eps}))\n"
    )
    env = None if extra_path is None else {**os.environ, "PYTHONPATH": str(extra_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _logs(topology) -> str:
    return "\n".join(p.log_text() for p in topology.processes)


def test_the_second_start_after_uninstall_serves(topologies, tmp_path: Path, request) -> None:
    config = tmp_path / "configmap" / "glm_image.yaml"
    config.parent.mkdir()
    cli = Path(sys.executable).with_name("omni-sizefix")
    written = subprocess.run(
        [str(cli), "stage-config", "--output", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert written.returncode == 0, written.stderr[-2000:]
    assert written.stdout.strip() == str(config) and config.is_file()
    settings = [line for line in config.read_text().splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "omni_sizefix" in line]  # names nothing of ours

    with_plugin = topologies.get("rollback-installed", stage_config=str(config), plugin=True)
    reply = client.generate(with_plugin.url, SIZE, model=with_plugin.served_model)
    assert image_outcome(reply, SIZE) == "ok", (reply.status, reply.message[:300])
    assert PLUGIN_LINE in _logs(with_plugin)
    topologies.close()

    source = request.getfixturevalue("uninstalled")
    assert _still_installed() == {"dist": False, "entry_points": []}
    assert _still_installed(source) == {"dist": False, "entry_points": []}
    assert not (source / "omni_sizefix" / "processors").exists()
    sys.path.insert(0, str(source))
    try:
        bare = topologies.get(
            "rollback-uninstalled",
            stage_config=str(config),
            plugin=True,  # no kill switch: the package is simply gone
            extra_env={"PYTHONPATH": str(source)},
        )
        reply = client.generate(bare.url, SIZE, model=bare.served_model)
        logs = _logs(bare)
        assert PLUGIN_LINE not in logs, [line for line in logs.splitlines() if PLUGIN_LINE in line]
        if served.dynamo_version() >= (1, 4):  # the host carries the size itself
            assert image_outcome(reply, SIZE) == "ok", (reply.status, reply.message[:300])
        else:  # the host as released: an HTTP error per request, the workers keep serving
            assert reply.status >= 400, reply.status
        assert bare.alive() == [p.name for p in bare.processes]
        assert bare.model_listed()
        topologies.close()
    finally:
        sys.path.remove(str(source))
