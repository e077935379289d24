"""A private etcd and NATS server for the live topology: production discovery and transport.

Dynamo deployments find their workers through etcd (``--discovery-backend etcd``, the
endpoints in ``ETCD_ENDPOINTS``) and send requests and events over NATS with JetStream
(``--request-plane nats --event-plane nats``, the server in ``NATS_SERVER``). ``EtcdNats``
starts one ``etcd`` and one ``nats-server -js`` as child processes so that the live
topology can run that way too::

    with EtcdNats(run_dir) as servers:
        with Topology(run_dir=run_dir, **servers.topology_options()) as topology:
            ...

Each server listens on 127.0.0.1 only, on free ports, keeps its data in its own folder
under ``run_dir`` and its log in ``run_dir/logs``, leads its own process group (stopped
with SIGTERM, then SIGKILL) and gets SIGTERM from Linux if the process that started it
dies. The binaries are looked up on ``PATH`` and in the sbin folders (Debian installs
``nats-server`` there); ``OMNI_SIZEFIX_ETCD`` / ``OMNI_SIZEFIX_NATS_SERVER`` name others.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from omni_sizefix.tools.live.topology import LOOPBACK, Progress, _child_setup, free_port, tail

#: Dynamo's arguments for discovery through etcd and requests and events over NATS.
TRANSPORT_ARGS = ("--discovery-backend", "etcd", "--request-plane", "nats", "--event-plane", "nats")
BINARIES = {"etcd": "OMNI_SIZEFIX_ETCD", "nats-server": "OMNI_SIZEFIX_NATS_SERVER"}
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
INSTALL_HINT = "apt-get install etcd-server nats-server"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
PORT_ATTEMPTS = 3


class ServerError(RuntimeError):
    """A server is missing, died or did not become ready; the message quotes its log."""


def binary(name: str) -> str | None:
    """Path of the ``etcd`` or ``nats-server`` executable, or None."""
    override = os.environ.get(BINARIES[name])
    if override:
        return override if os.access(override, os.X_OK) else None
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    return shutil.which(name, path=search)


def unavailable_reason() -> str | None:
    """Why the servers cannot be started here (None: both binaries found)."""
    missing = [name for name in BINARIES if binary(name) is None]
    if not missing:
        return None
    return f"{' and '.join(missing)} not found (install: {INSTALL_HINT})"


def version(name: str) -> str:
    """The first line ``<binary> --version`` prints ('' if it cannot be run)."""
    path = binary(name)
    if path is None:
        return ""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


@dataclass
class Server:
    """One server process."""

    name: str
    log: Path
    port: int = 0
    monitor_port: int = 0
    popen: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        pgid = self.popen.pid  # it leads its own group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            self.popen.wait(timeout=5)


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            preexec_fn=_child_setup(0),
        )


def _http_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _nats_info(port: int) -> dict | None:
    """The INFO a NATS server greets a client with (None if it does not answer yet)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
            line = sock.makefile("rb").readline(65536).decode("utf-8", "replace")
    except OSError:
        return None
    if not line.startswith("INFO "):
        return None
    try:
        return json.loads(line[5:])
    except ValueError:
        return None


@dataclass
class EtcdNats:
    """One etcd and one NATS server (JetStream on), started and stopped together."""

    run_dir: Path
    progress: Progress = print
    etcd: Server | None = None
    nats: Server | None = None
    etcd_version: str = ""
    nats_version: str = ""
    servers: list[Server] = field(default_factory=list)

    @property
    def etcd_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.etcd.port}"  # type: ignore[union-attr]

    @property
    def nats_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.nats.port}"  # type: ignore[union-attr]

    def env(self) -> dict[str, str]:
        """The variables Dynamo's processes read to find these servers."""
        return {"ETCD_ENDPOINTS": self.etcd_endpoint, "NATS_SERVER": self.nats_url}

    def topology_options(self) -> dict:
        """Keyword arguments that make ``Topology`` use these servers."""
        return {"transport_args": TRANSPORT_ARGS, "extra_env": self.env()}

    # --- start / stop --------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> EtcdNats:
        """Start both servers and wait until each answers; raise ServerError."""
        reason = unavailable_reason()
        if reason:
            raise ServerError(reason)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self.etcd = self._start_with_free_ports("etcd", self._start_etcd, timeout)
            self.nats = self._start_with_free_ports("nats-server", self._start_nats, timeout)
        except BaseException:
            self.stop()
            raise
        self.progress(
            f"  etcd {self.etcd_version or '?'} at {self.etcd_endpoint}, "
            f"nats-server {self.nats_version or '?'} (JetStream) at {self.nats_url}; "
            f"logs {self.etcd.log}, {self.nats.log}"
        )
        return self

    def _start_with_free_ports(self, name: str, start_one, timeout: float) -> Server:
        # A free port can be taken between the check and the bind: try again with others.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            server = start_one()
            self.servers.append(server)
            try:
                self._wait(server, timeout)
                return server
            except ServerError:
                server.stop()
                if attempt == PORT_ATTEMPTS or "address already in use" not in (
                    server.log.read_text(errors="replace").lower()
                ):
                    raise
                self.progress(f"  {name}: port taken, trying another one")
        raise AssertionError("unreachable")

    def _start_etcd(self) -> Server:
        client, peer = free_port(), free_port()
        server = Server("etcd", self.run_dir / "logs" / "etcd.log", client)
        data = self.run_dir / "etcd" / f"data-{client}"
        data.parent.mkdir(parents=True, exist_ok=True)
        peer_url, client_url = f"http://{LOOPBACK}:{peer}", f"http://{LOOPBACK}:{client}"
        argv = [
            binary("etcd") or "etcd",
            "--name=omni-sizefix",
            f"--data-dir={data}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=omni-sizefix={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        server.popen = _spawn(argv, server.log, self.run_dir)
        return server

    def _start_nats(self) -> Server:
        port, monitor = free_port(), free_port()
        server = Server("nats-server", self.run_dir / "logs" / "nats.log", port, monitor)
        store = self.run_dir / "nats" / f"store-{port}"
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            binary("nats-server") or "nats-server",
            "--addr",
            LOOPBACK,
            "--port",
            str(port),
            "--http_port",  # monitoring (/varz, /connz), on the same address
            str(monitor),
            "--jetstream",
            "--store_dir",
            str(store),
            "--server_name",
            "omni-sizefix",
        ]
        server.popen = _spawn(argv, server.log, self.run_dir)
        return server

    def _ready(self, server: Server) -> bool:
        if server.name == "etcd":
            health = _http_json(f"http://{LOOPBACK}:{server.port}/health")
            if not health or str(health.get("health")) != "true":
                return False
            about = _http_json(f"http://{LOOPBACK}:{server.port}/version") or {}
            self.etcd_version = str(about.get("etcdserver", ""))
            return True
        info = _nats_info(server.port)
        if not info or not info.get("jetstream"):
            return False
        self.nats_version = str(info.get("version", ""))
        return True

    def _wait(self, server: Server, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = server.popen.poll() if server.popen else None
            if code is not None:
                raise ServerError(
                    f"{server.name} exited with code {code}; last lines of {server.log}:\n"
                    f"{tail(server.log)}"
                )
            if self._ready(server):
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{server.name} not ready after {timeout:.0f} s; last lines of "
                    f"{server.log}:\n{tail(server.log)}"
                )
            time.sleep(0.2)

    # --- what went through them -------------------------------------------------------------

    def etcd_keys(self, prefix: str = "") -> list[str]:
        """The keys etcd holds (under ``prefix``), through its v3 JSON gateway."""
        start = prefix.encode() or b"\0"
        end = (prefix[:-1] + chr(ord(prefix[-1]) + 1)).encode() if prefix else b"\0"
        body = json.dumps(
            {
                "key": base64.b64encode(start).decode(),
                "range_end": base64.b64encode(end).decode(),
                "keys_only": True,
            }
        ).encode()
        request = urllib.request.Request(f"{self.etcd_endpoint}/v3/kv/range", data=body)
        with urllib.request.urlopen(request, timeout=5) as response:
            reply = json.loads(response.read())
        return sorted(
            base64.b64decode(kv["key"]).decode("utf-8", "replace") for kv in reply.get("kvs", [])
        )

    def nats_stats(self) -> dict:
        """NATS's monitoring ``/varz``: ``connections``, ``in_msgs``, ``out_msgs``, ..."""
        stats = _http_json(f"http://{LOOPBACK}:{self.nats.monitor_port}/varz")  # type: ignore[union-attr]
        if stats is None:
            raise ServerError(
                f"nats-server monitoring on port {self.nats.monitor_port} does not answer"
            )  # type: ignore[union-attr]
        return stats

    def alive(self) -> list[str]:
        """Names of the servers still running."""
        return [s.name for s in self.servers if s.popen and s.popen.poll() is None]

    def pids(self) -> list[int]:
        return [s.popen.pid for s in self.servers if s.popen]

    def stop(self) -> None:
        """Stop both servers (NATS first, then etcd); data and logs stay in ``run_dir``."""
        for server in reversed(self.servers):
            server.stop()

    def __enter__(self) -> EtcdNats:
        return self.start() if not self.servers else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
