"""What vLLM-Omni's own GLM-Image DiT does with what the host hands it, with and without the
plugin: the size policy, the stage-0 budget and the sizes only the DiT's own rules reject.

The DiT is judged by the installed release's ``GlmImagePipeline.forward`` (run without
weights up to its size checks, ``omni_sizefix.tools.simulation.dit_oracle``). Expected
values are computed here from upstream's rule, with the DiT's multiple read from upstream's
own pre-process function (``glm_upstream.dit_multiple``): the DiT floors each side to that
multiple and raises ``ValueError`` unless the prior's length matches; the AR prior for a
scaffold is (H//32*2)*(W//32*2). Each test of the plugin fails with ``OMNI_SIZEFIX_DISABLE=1``.
"""

from __future__ import annotations

import glm_upstream
import pytest
from conftest import DynamoHost, config_with_budget, image_request
from test_stage1_runtime import expectation as pair_expectation
from test_stage1_runtime import own_config_file

from omni_sizefix.runtime import settings
from omni_sizefix.tools.simulation import dryrun

#: (height, width): a multiple of 16 but not of 32, neither, a mixed one, and a valid control.
ODD_SIZES = [(1000, 1000), (1008, 1008), (700, 1000), (768, 1024)]


def run(request: dict, configs: list, **kwargs) -> dryrun.StageOneResult:
    """The dry run; an exception raised to the client (e.g. a rejection) is its result."""
    try:
        return dryrun.run_request(request, configs, **kwargs)
    except Exception as exc:
        return dryrun.StageOneResult(error=f"{type(exc).__name__}: {exc}")


@pytest.fixture(scope="module")
def own_configs(load_configs, tmp_path_factory: pytest.TempPathFactory) -> list:
    """vLLM-Omni's own GLM-Image stage config (stage 1: its own ``ar2diffusion``)."""
    return load_configs(own_config_file(tmp_path_factory.mktemp("own_config")))


@pytest.fixture(scope="module")
def multiple() -> int:
    return glm_upstream.dit_multiple()


def assert_upstream_outcome(result: dryrun.StageOneResult, height: int, width: int, m: int):
    want = glm_upstream.dit_expectation(height, width, m)
    assert result.dit is not None, result.dit_unavailable
    if want.renders is None:
        assert result.dit.error and result.dit.error.startswith("ValueError"), result.dit
        assert f"seq_len ({want.prior_len})" in result.dit.error
        assert f"expected seq_len={want.expected_len}" in result.dit.error
    else:
        assert result.dit.error is None, result.dit.error
        assert (result.dit.height, result.dit.width) == want.renders


@pytest.mark.parametrize(("height", "width"), ODD_SIZES)
def test_bare_host_gets_what_the_upstream_dit_does(
    kill_switch: DynamoHost, own_configs: list, multiple: int, height: int, width: int
) -> None:
    """Plugin off: e.g. 1000x1000 renders 992x992, 1008x1008 raises in the DiT."""
    result = run(image_request(height, width), own_configs)
    if result.error or result.dit is None:
        # This pair breaks before the DiT (its stage-0/stage-1 defects, own tests): no size
        # of the DiT's to judge, and the request does not render as asked.
        expect = pair_expectation()
        assert expect.defects, (result.error, result.dit_unavailable)
        assert result.verdict(height, width) != "ok"
        return
    assert_upstream_outcome(result, height, width, multiple)
    want = glm_upstream.dit_expectation(height, width, multiple)
    if want.renders != (height, width):
        assert result.verdict(height, width) != "ok"


@pytest.mark.parametrize(("height", "width"), ODD_SIZES)
def test_plugin_renders_exactly_or_rejects_up_front(
    patched: DynamoHost, own_configs: list, height: int, width: int
) -> None:
    """Default policy (reject): every size either renders exactly as asked or is refused
    before stage 0 runs; none reaches a DiT that renders another size or raises."""
    result = run(image_request(height, width), own_configs)
    if result.error:
        assert result.stage0_prompt is None, result.error  # refused before stage 0
        assert "cannot be rendered exactly" in result.error
        return
    assert result.dit is not None, result.dit_unavailable
    assert result.dit.error is None and (result.dit.height, result.dit.width) == (height, width)


@pytest.mark.parametrize(("height", "width"), ODD_SIZES)
def test_snap_policy_renders_a_size_the_dit_keeps(
    patched: DynamoHost,
    own_configs: list,
    multiple: int,
    monkeypatch: pytest.MonkeyPatch,
    height: int,
    width: int,
) -> None:
    monkeypatch.setenv(settings.SIZE_POLICY_VAR, "snap")
    result = run(image_request(height, width), own_configs)
    assert result.error is None and result.dit is not None, result.error
    assert result.dit.error is None, result.dit.error
    rendered = (result.dit.height, result.dit.width)
    # what the DiT renders is what it was asked (upstream's own rule keeps it unchanged)
    assert glm_upstream.dit_expectation(*rendered, multiple).renders == rendered
    assert all(abs(got - asked) <= 16 for got, asked in zip(rendered, (height, width), strict=True))


# --- the stage-0 budget: observed at the max_tokens the host passes ------------------------

SMALL_BUDGET = 1281  # vLLM-Omni <= 0.18's legacy GLM-Image stage-0 max_tokens


def _over_budget() -> tuple[int, int]:
    """A size whose scaffold (preview + target grid + EOS) exceeds SMALL_BUDGET."""
    height, width = 1024, 1536
    rows, cols = height // 32, width // 32
    preview = int((rows / cols) ** 0.5 * 16) * int((cols / rows) ** 0.5 * 16)
    assert rows * cols + preview + 1 > SMALL_BUDGET
    return height, width


@pytest.fixture
def small_budget_configs(load_configs, tmp_path) -> list:
    return load_configs(config_with_budget(tmp_path, SMALL_BUDGET))


def test_bare_host_cuts_the_prior_at_its_budget(
    kill_switch: DynamoHost, small_budget_configs: list
) -> None:
    """Plugin off: stage 0 gets max_tokens 1281 and stops there; the DiT gets no right prior."""
    height, width = _over_budget()
    ar = dryrun.FakeAREngine()
    result = run(image_request(height, width), small_budget_configs, ar_engine=ar)
    sampling = ar.calls[0][1]
    first = sampling[0] if isinstance(sampling, list) else sampling
    assert getattr(first, "max_tokens", None) == SMALL_BUDGET  # what the host passed
    assert result.verdict(height, width) != "ok"


def test_plugin_refuses_what_the_budget_would_cut(
    patched: DynamoHost, small_budget_configs: list
) -> None:
    height, width = _over_budget()
    try:
        patched.worker(small_budget_configs[0], 0)  # a stage-0 worker learns its budget
        result = run(image_request(height, width), small_budget_configs)
    finally:
        from omni_sizefix.runtime import sizing

        sizing.set_budget(None)
    assert result.error and result.stage0_prompt is None, result.error
    assert f"max_tokens is {SMALL_BUDGET}" in result.error


# --- omni-sizefix check shows the bare host's real outcome ----------------------------------


def test_check_shows_what_the_upstream_dit_does_without_the_plugin(
    dynamo_host: DynamoHost, multiple: int
) -> None:
    """``check`` (in this process): with the plugin the odd sizes are refused up front;
    without it, stage 1 fed the requested layout ends as upstream's DiT says (renders the
    floored size, or its prior-length ``ValueError``)."""
    from test_contract import expected_host_defects

    from omni_sizefix.tools import check

    report = check.run(["1000x1000", "1008x1008", "1000x700"])
    _, stage1_unsized = expected_host_defects()
    for row in report.rows:
        width, height = (int(side) for side in row.size.split("x"))  # WIDTHxHEIGHT
        assert "cannot be rendered exactly" in row.verdict, row.verdict
        if row.unpatched_stage1.startswith("error:") or stage1_unsized:
            # this pair's stage 1 crashes or loses the size first (test_stage1_runtime)
            assert row.unpatched_stage1 != "ok"
            continue
        want = glm_upstream.dit_expectation(height, width, multiple)
        if want.renders is None:
            assert row.unpatched_stage1.startswith("DiT error: ValueError"), row.unpatched_stage1
            assert f"seq_len ({want.prior_len})" in row.unpatched_stage1
        else:
            assert row.unpatched_stage1 == f"DiT renders {want.renders[1]}x{want.renders[0]}"
