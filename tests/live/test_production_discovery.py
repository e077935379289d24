"""The live topology as deployments run it: workers found through etcd, requests over NATS.

The same four real Dynamo processes as ``test_live_topology.py`` (engines FAKE), but with
``--discovery-backend etcd --request-plane nats --event-plane nats`` against a real
``etcd`` and a real ``nats-server -js`` that this module starts on 127.0.0.1
(``omni_sizefix.tools.live.etcd_nats``) and stops after its topologies. Skipped when the two
binaries are missing (``apt-get install etcd-server nats-server``). The workers load
vLLM-Omni's own GLM-Image stage config. By default only the plugin-on topology runs; the
kill-switch one is opt-in (``OMNI_SIZEFIX_LIVE_ETCD_KILL_SWITCH=1``, 2-4 min more).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import glm_rules
import pytest
from live_expect import fits, image_outcome

from omni_sizefix.tools.live import client, etcd_nats, served
from omni_sizefix.tools.live.topology import Topology, stage0_max_tokens

pytestmark = pytest.mark.live

#: Candidates: the largest, landscape, portrait, the smallest, non-enum both ways; kept where
#: the release's frontend takes them and the own config's stage-0 budget holds them.
CANDIDATE_SIZES = (
    "1024x1024",
    "1536x1024",
    "1024x1536",
    "512x512",
    "256x256",
    "1024x768",
    "768x1024",
)
#: Sizes the released host is checked with under the kill switch.
DEFECT_SIZES = ("512x512", "1024x1024")


def sizes_for(topology: Topology) -> list[str]:
    limit = stage0_max_tokens(topology.stage_config_path)
    found = [s for s in CANDIDATE_SIZES if served.frontend_takes(s) and fits(s, limit)]
    assert found, "no candidate size fits this frontend and budget"
    return found


class _Started:
    """The servers and every topology this module started, for the orphan check."""

    def __init__(self, servers: etcd_nats.EtcdNats) -> None:
        self.servers = servers
        self.topologies: list[Topology] = []
        self.groups: set[int] = set()
        self.folders: list[str] = [str(servers.run_dir)]

    def get(self, holder, key: str, **kwargs) -> Topology:
        namespace = f"omni-sizefix-etcd-nats-{key}-{os.getpid()}"
        options = self.servers.topology_options()
        options["extra_env"] = {**options["extra_env"], "DYN_NAMESPACE": namespace}
        topology = holder.get(key, **options, **kwargs)
        if topology not in self.topologies:
            topology.namespace = namespace  # type: ignore[attr-defined]
            self.topologies.append(topology)
            self.groups.add(topology.processes[0].popen.pid)  # the group leader
            self.folders.append(str(topology.run_dir))
        return topology


@pytest.fixture(scope="module")
def started(topologies, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Started]:
    reason = etcd_nats.unavailable_reason()
    if reason:
        pytest.skip(f"no etcd/NATS here: {reason}")
    servers = etcd_nats.EtcdNats(tmp_path_factory.mktemp("etcd-nats"), progress=print)
    try:
        servers.start()
    except etcd_nats.ServerError as exc:
        pytest.fail(f"etcd/NATS did not start: {exc}")
    holder = _Started(servers)
    holder.groups.update(servers.pids())  # each server leads its own group
    yield holder
    topologies.close()  # the workers first: they deregister from etcd on the way out
    servers.stop()


@pytest.fixture(scope="module")
def plugin_on(started, topologies) -> Topology:
    return started.get(topologies, "etcd-nats-own-plugin-on", stage_config="own", plugin=True)


@pytest.fixture(scope="module")
def plugin_off(started, topologies) -> Topology:
    if os.environ.get("OMNI_SIZEFIX_LIVE_ETCD_KILL_SWITCH") != "1":
        pytest.skip("set OMNI_SIZEFIX_LIVE_ETCD_KILL_SWITCH=1 (a second etcd+NATS topology)")
    return started.get(topologies, "etcd-nats-own-plugin-off", stage_config="own", plugin=False)


def test_every_size_comes_back_through_etcd_and_nats(started, plugin_on):
    servers = started.servers
    keys = [key for key in servers.etcd_keys() if plugin_on.namespace in key]
    print(f"etcd keys of {plugin_on.namespace}: {keys}")
    for component in ("ar", "dit", "backend"):  # stage 0, stage 1, the router
        assert any(f"instances/{plugin_on.namespace}/{component}/" in key for key in keys), (
            component,
            keys,
        )
    # the model card the frontend found the router by
    assert any(key.startswith(f"v1/mdc/{plugin_on.namespace}/") for key in keys), keys
    assert not (plugin_on.run_dir / "discovery").exists(), "file discovery was used"
    messages_before = servers.nats_stats()["in_msgs"]

    openai = pytest.importorskip(
        "openai",
        reason="no openai client in this cell: nox installs tests/requirements/live-tools.txt "
        "with the live suite; in a kept cell run `uv pip install -r "
        "tests/requirements/live-tools.txt`",
    )
    api = openai.OpenAI(base_url=plugin_on.url + "/v1", api_key="unused", max_retries=0)
    first, *rest = sizes_for(plugin_on)
    result = api.images.generate(
        model=plugin_on.served_model,
        prompt="a red apple on a white table",
        size=first,
        response_format="b64_json",
        timeout=300,
    )
    got, prior = client.decode_image(result.data[0].b64_json)
    width, height = (int(side) for side in first.split("x"))
    assert got == (width, height), first
    assert prior == glm_rules.expected_prior(height, width), "the picture shows another prior"

    for size in rest:
        reply = client.generate(plugin_on.url, size, model=plugin_on.served_model)
        outcome = image_outcome(reply, size)
        print(f"etcd + NATS, plugin on, {size}: {outcome} in {reply.latency_s:.2f} s")
        assert outcome == "ok", (size, reply.status, reply.size, reply.message[:300])

    stats = servers.nats_stats()
    print(f"NATS: {stats['in_msgs'] - messages_before} messages in during the requests")
    assert stats["in_msgs"] > messages_before, "no request went through NATS"
    assert plugin_on.alive() == [p.name for p in plugin_on.processes]


@pytest.mark.parametrize("size", DEFECT_SIZES)
def test_kill_switch_shows_the_released_defect_through_etcd_and_nats(plugin_off, size):
    reply = client.generate(plugin_off.url, size, model=plugin_off.served_model)
    outcome = image_outcome(reply, size)
    release = served.dynamo_version()
    print(f"etcd + NATS, kill switch, ai-dynamo {release}, {size}: {outcome}")
    if release < (1, 2):
        # 1.1: the shared-memory connector drops cumulative_token_ids; stage 1 fails.
        assert reply.status == 500, outcome
        stage1 = next(p for p in plugin_off.processes if p.name == "stage-1 worker")
        assert "cumulative_token_ids" in stage1.log_text()
    elif release < (1, 4):
        # 1.2/1.3: stage 1 cannot call vLLM-Omni's own processor: the request fails.
        assert reply.status >= 400, outcome
        stage1 = next(p for p in plugin_off.processes if p.name == "stage-1 worker")
        assert "TypeError" in stage1.log_text()
    else:
        # 1.4+: the host already carries the size everywhere.
        assert outcome == "ok", outcome


def test_nothing_is_left_running(started, topologies):
    """Runs last: stop the topology and the servers, then look for leftovers with ps."""
    if not started.topologies:
        pytest.skip("no topology was started in this module")
    topologies.close()
    started.servers.stop()
    assert started.servers.alive() == []
    deadline = time.monotonic() + 15
    while True:  # exited children may take a moment to be reaped
        left, zombies = _leftovers(started)
        if not (left or zombies) or time.monotonic() > deadline:
            break
        time.sleep(1)
    if zombies:
        print("exited, not reaped yet (zombies):\n" + "\n".join(zombies))
    assert not left, "processes left behind:\n" + "\n".join(left)


def _leftovers(started: _Started) -> tuple[list[str], list[str]]:
    """(running, zombie) processes of our process groups or naming our folders."""
    ps = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    left, zombies = [], []
    for line in ps.splitlines():
        pid, pgid, stat, args = [*line.strip().split(None, 3), ""][:4]
        if int(pid) == os.getpid():
            continue
        if int(pgid) in started.groups or any(folder in args for folder in started.folders):
            (zombies if stat.startswith("Z") else left).append(line.strip())
    return left, zombies
