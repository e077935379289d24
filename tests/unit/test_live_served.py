"""Which sizes a live topology is asked for: the frontend's enum and the stage-0 budget."""

from __future__ import annotations

import pytest

from omni_sizefix.tools.live import live_check, served

LEGACY_OWN_BUDGET = 1281  # vLLM-Omni's legacy GLM-Image config
SHIPPED_BUDGET = 4353


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch):
    def set_release(version: tuple[int, int]) -> None:
        monkeypatch.setattr(served, "dynamo_version", lambda: version)

    return set_release


def test_enum_frontend_and_legacy_budget_leave_the_three_squares(release) -> None:
    release((1, 1))
    sizes = ("256x256", "512x512", "1024x1024", "1536x1024", "768x1024", "2048x2048")
    assert served.servable(sizes, LEGACY_OWN_BUDGET) == ["256x256", "512x512", "1024x1024"]
    assert live_check.default_sizes(LEGACY_OWN_BUDGET) == [
        "256x256",
        "512x512",
        "1024x1024",
        "1536x1024",  # over the budget: shown rejected with the plugin
    ]


def test_free_frontend_and_shipped_budget_take_everything(release) -> None:
    release((1, 6))
    sizes = ("768x1024", "2048x2048", "1536x1024")
    assert served.servable(sizes, SHIPPED_BUDGET) == list(sizes)
    assert not served.fits("2048x2048", LEGACY_OWN_BUDGET)
    assert served.fits("1024x1024", LEGACY_OWN_BUDGET)


def test_rejected_rows_count_as_expected_only_with_the_prefix() -> None:
    rows = [
        live_check.Row("256x256", "256x256", "ok", 0.1),
        live_check.Row("1536x1024", "HTTP 500", f"{live_check.REJECTED}: HTTP 500", 0.1),
    ]
    report = live_check.LiveReport(versions={}, sizes=["256x256", "1536x1024"])
    report.runs.append(live_check.Run("with", "plugin", rows=rows))
    assert report.ok
    rows[1].verdict = "HTTP 500: Failed to fold images stream"
    assert not report.ok
