"""The ``omni-sizefix`` command line, where no host is needed."""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata
from pathlib import Path

import pytest

from omni_sizefix.tools import cli, doctor, host_profile, hosts


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_help_everywhere(capsys: pytest.CaptureFixture) -> None:
    for argv in ([], ["doctor"], ["check"], ["smoke"], ["stage-config"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--help"])
        assert exit_info.value.code == 0
        assert "usage: omni-sizefix" in capsys.readouterr().out


def _entry_point_installed() -> bool:
    """True when omni-sizefix is installed (a bare source tree has no entry points)."""
    return any(
        ep.name == "omni_sizefix" for ep in metadata.entry_points(group="vllm.general_plugins")
    )


def test_doctor_json_is_machine_readable(capsys: pytest.CaptureFixture) -> None:
    code, out = run(capsys, "doctor", "--json")
    report = json.loads(out)
    assert report["exit_code"] == code
    assert set(report["versions"]) >= {"ai-dynamo", "vllm-omni", "pluggy"}
    installed = _entry_point_installed()  # run from a bare source tree: not installed
    assert report["entry_points"] == {
        "vllm_omni.general_plugins": installed,
        "vllm.general_plugins": installed,
    }
    missing = [f for f in report["findings"] if "entry point omni_sizefix" in f["problem"]]
    assert len(missing) == (0 if installed else 2)
    for finding in report["findings"]:
        assert finding["problem"] and finding["fix"]


def test_doctor_flags_kill_switch_and_vllm_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SIZEFIX_DISABLE", "1")
    monkeypatch.setenv("VLLM_PLUGINS", "some_other_plugin")
    report = doctor.diagnose()
    problems = " ".join(f.problem for f in report.findings)
    assert "OMNI_SIZEFIX_DISABLE is set" in problems
    assert "filters omni_sizefix out" in problems
    assert report.exit_code >= doctor.ATTENTION


def test_doctor_says_unsupported_host(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {
        "ai-dynamo": "1.0.2",
        "vllm": None,
        "vllm-omni": "0.20.0",
        "torch": None,
        "transformers": None,
        "pluggy": "1.6.0",
    }
    monkeypatch.setattr(hosts, "host_versions", lambda: versions)
    report = doctor.diagnose()
    assert report.exit_code == doctor.PROBLEM  # a problem found, not "could not check"
    assert any(
        "ai-dynamo 1.0.2 is outside" in f.problem and f.label == "UNSUPPORTED"
        for f in report.findings
    )


def test_doctor_reads_host_signatures_without_importing(tmp_path: Path, monkeypatch) -> None:
    utils = tmp_path / "dynamo" / "vllm" / "omni" / "utils.py"
    utils.parent.mkdir(parents=True)
    utils.write_text(
        "def build_original_prompt(request, nvext, height, width):\n    pass\n"
        "async def parse_omni_request(request, output_modalities, fps=16):\n    pass\n"
    )

    class FakeDistribution:  # FAKE: an installed ai-dynamo whose parse signature drifted
        def locate_file(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(host_profile.metadata, "distribution", lambda name: FakeDistribution())
    found = host_profile.signatures_from_source()
    assert found["parse_omni_request"] == "async (request, output_modalities, fps)"
    monkeypatch.undo()
    profile = dataclasses.replace(
        host_profile.build(),
        signatures=found,
        signature_problems=host_profile.signature_problems(found),
    )
    report = doctor.diagnose(profile=profile)
    assert report.exit_code >= doctor.PROBLEM
    assert any(
        "parse_omni_request is async (request, output_modalities, fps)" in f.problem
        and f.label == "UNSUPPORTED"
        and f.level == doctor.PROBLEM
        for f in report.findings
    )


@pytest.mark.parametrize("schema", ["legacy", "deploy"])
def test_stage_config_prints_a_shipped_file(capsys, schema: str) -> None:
    code, out = run(capsys, "stage-config", "glm_image", "--schema", schema)
    assert code == 0
    path = Path(out.strip())
    assert path.is_file() and path.name == f"glm_image.{schema}.yaml"


def test_check_rejects_malformed_sizes(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["check", "--size", "big"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_check_without_host_exits_2(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    pytest.importorskip("omni_sizefix")
    try:
        import dynamo.vllm.omni.stage_worker  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("a host is installed here; tests/host covers check")
    assert cli.main(["check", "--size", "512x512", "--log-file", str(tmp_path / "c.log")]) == 2
    assert "cannot import" in capsys.readouterr().err
