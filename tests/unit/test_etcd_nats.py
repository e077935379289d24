"""The private etcd and NATS servers of the live topology (``omni_sizefix.tools.live.etcd_nats``).

Starts the real ``etcd`` and ``nats-server`` binaries (about a second); skipped when they
are missing (``apt-get install etcd-server nats-server``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import socket

import pytest

from omni_sizefix.tools.live import etcd_nats


@pytest.fixture
def servers(tmp_path):
    reason = etcd_nats.unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = etcd_nats.EtcdNats(tmp_path, progress=lambda line: None).start()
    yield started
    started.stop()


def _listening_on(pid: int) -> set[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing (the server is running)
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address, port = fields[1].split(":")
                    if len(address) == 8:
                        ip = socket.inet_ntoa(bytes.fromhex(address)[::-1])
                    else:
                        ip = f"ipv6:{address}"
                    found.add(f"{ip}:{int(port, 16)}")
    return found


def test_both_answer_on_loopback_only_and_stop(servers):
    assert servers.alive() == ["etcd", "nats-server"]
    assert servers.env() == {
        "ETCD_ENDPOINTS": f"http://127.0.0.1:{servers.etcd.port}",
        "NATS_SERVER": f"nats://127.0.0.1:{servers.nats.port}",
    }
    assert servers.etcd_version and servers.nats_version  # read from the running servers
    assert servers.etcd_keys() == []  # a fresh data folder
    stats = servers.nats_stats()
    assert stats["jetstream"]["config"]["store_dir"].startswith(str(servers.run_dir))
    for server in servers.servers:
        addresses = _listening_on(server.popen.pid)
        assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
        assert os.getpgid(server.popen.pid) == server.popen.pid  # it leads its own group
    pids = servers.pids()
    servers.stop()
    assert servers.alive() == []
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), pid
    assert (servers.run_dir / "logs" / "etcd.log").stat().st_size > 0  # logs are kept
    assert (servers.run_dir / "logs" / "nats.log").stat().st_size > 0


def test_topology_options_select_etcd_and_nats(servers):
    options = servers.topology_options()
    assert options["transport_args"] == (
        "--discovery-backend",
        "etcd",
        "--request-plane",
        "nats",
        "--event-plane",
        "nats",
    )
    assert options["extra_env"] == servers.env()


def test_a_missing_binary_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNI_SIZEFIX_NATS_SERVER", str(tmp_path / "no-such-nats-server"))
    reason = etcd_nats.unavailable_reason()
    assert reason is not None and "nats-server not found" in reason
    assert "apt-get install etcd-server nats-server" in reason
    with pytest.raises(etcd_nats.ServerError, match="nats-server not found"):
        etcd_nats.EtcdNats(tmp_path).start()


def test_a_server_that_dies_is_reported_with_its_log(monkeypatch, tmp_path):
    if etcd_nats.unavailable_reason():
        pytest.skip(etcd_nats.unavailable_reason())
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    monkeypatch.setattr(etcd_nats, "free_port", lambda: taken)  # every attempt collides
    servers = etcd_nats.EtcdNats(tmp_path, progress=lambda line: None)
    try:
        with pytest.raises(etcd_nats.ServerError, match="etcd exited with code"):
            servers.start(timeout=30)
    finally:
        blocker.close()
    assert servers.alive() == []
