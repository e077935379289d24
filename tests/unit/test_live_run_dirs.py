"""``check --live`` deletes the run folders it created, unless asked to keep them or a run failed.

The topology is replaced by a stand-in that only creates its run folder the way the real one
does (``Topology.ensure_run_dir``): what is tested is who deletes which folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_sizefix.tools.live import client, live_check, topology


class StandIn(topology.Topology):
    """A topology that starts nothing: its run folder and logs are real, its processes none."""

    fail_start = False

    def start(self, timeout: float = 0.0) -> topology.Topology:
        (self.ensure_run_dir() / "logs" / "stage0.log").write_text("stage-0 log\n")
        self.stage_config_path = Path(self.run_dir) / "config.yaml"  # type: ignore[arg-type]
        self.stage_config_path.write_text("stage_args: []\n")
        if self.fail_start:
            raise topology.TopologyError("stage-0 worker exited with code 1")
        self.started_s = 1.0
        return self


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    made: list[StandIn] = []

    def factory(**kwargs) -> StandIn:
        made.append(StandIn(**kwargs))
        return made[-1]

    monkeypatch.setattr(topology.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(live_check.topology, "Topology", factory)
    return made


def reply_for(size_back: str):
    def generate(url: str, size: str, **kwargs) -> client.ImageReply:
        width, height = (int(side) for side in size_back.split("x"))
        return client.ImageReply(status=200, latency_s=0.1, size=(width, height), prior=None)

    return generate


def test_passed_runs_leave_no_folder_behind(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "generate", reply_for("256x256"))
    monkeypatch.setattr(client, "verdict", lambda reply, size: "ok")
    report = live_check.run(["256x256"], timeout=1)
    assert [r.logs for r in report.runs] == [None, None]
    assert len(runs) == 2 and not any(r.run_dir.exists() for r in runs)
    assert "logs deleted" in live_check.render(report)


def test_keep_logs_keeps_every_folder(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "generate", reply_for("256x256"))
    monkeypatch.setattr(client, "verdict", lambda reply, size: "ok")
    report = live_check.run(["256x256"], timeout=1, keep_logs=True)
    assert all(Path(r.logs, "stage0.log").is_file() for r in report.runs)


def test_a_failed_run_keeps_its_logs_and_names_them(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "generate", reply_for("1024x1024"))
    monkeypatch.setattr(client, "verdict", lambda reply, size: "wrong size 1024x1024")
    report = live_check.run(["256x256"], timeout=1)
    with_plugin, without = report.runs
    assert with_plugin.logs and Path(with_plugin.logs, "stage0.log").is_file()
    assert f"logs kept in {with_plugin.logs}" in live_check.render(report)
    # Without the plugin a wrong size is the released defect, not a failure of the check.
    assert without.logs is None and not runs[1].run_dir.exists()


def test_a_topology_that_did_not_start_keeps_its_logs(
    runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StandIn, "fail_start", True)
    report = live_check.run(["256x256"], timeout=1)
    assert all(r.error and r.logs and Path(r.logs).is_dir() for r in report.runs)


def test_a_folder_given_by_the_caller_is_never_deleted(tmp_path: Path) -> None:
    given = topology.Topology(run_dir=tmp_path / "mine")
    given.ensure_run_dir()
    assert given.remove_run_dir() is False and (tmp_path / "mine" / "logs").is_dir()


def test_check_live_keeps_progress_on_the_terminal_and_leaves_no_log_file(tmp_path: Path) -> None:
    from omni_sizefix.tools import cli

    parse = cli.build_parser().parse_args
    assert cli._log_path(parse(["check", "--live"])) is None  # stderr stays the terminal
    given = tmp_path / "check.log"
    assert cli._log_path(parse(["check", "--live", "--log-file", str(given)])) == given
    plain = cli._log_path(parse(["check"]))  # without --live: a log file, as before
    assert plain is not None and plain.exists()
    plain.unlink()
