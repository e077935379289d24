"""The live frontend restarts on a new free port when the one it was given is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from omni_sizefix.tools.live import topology


def _frontend(tmp_path: Path, port: int, log_text: str) -> topology.Process:
    log = tmp_path / "frontend.log"
    log.write_text(log_text)
    argv = [sys.executable, "-c", "pass", "--http-port", str(port)]
    proc = topology.Process("frontend", argv, log)
    proc.popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    proc.popen.wait()
    return proc


def test_taken_port_restarts_the_frontend_on_another(tmp_path: Path, monkeypatch) -> None:
    with socket.socket() as holder:  # a real collision: this port is bound by someone else
        holder.bind((topology.LOOPBACK, 0))
        taken = holder.getsockname()[1]
        topo = topology.Topology(http_port=taken, progress=lambda _: None)
        topo._port_retries = topology.PORT_RETRIES
        spawned: list[list[str]] = []
        monkeypatch.setattr(topo, "_spawn", lambda proc, env: spawned.append(list(proc.argv)))
        proc = _frontend(tmp_path, taken, "OSError: [Errno 98] Address already in use\n")
        assert topo._port_taken(proc)
    assert topo.http_port != taken
    assert spawned == [[sys.executable, "-c", "pass", "--http-port", str(topo.http_port)]]
    assert topo._port_retries == topology.PORT_RETRIES - 1


def test_a_chosen_port_or_another_failure_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    topo = topology.Topology(http_port=8123, progress=lambda _: None)  # the user's port
    monkeypatch.setattr(topo, "_spawn", lambda proc, env: None)
    assert not topo._port_taken(_frontend(tmp_path, 8123, "Address already in use\n"))
    topo._port_retries = topology.PORT_RETRIES
    assert not topo._port_taken(_frontend(tmp_path, 8123, "Traceback: something else\n"))
    assert topo.http_port == 8123
