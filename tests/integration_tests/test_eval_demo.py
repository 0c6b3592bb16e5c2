"""`langchain-steer eval sweep | calibrate | diagnose` on the embedded demo model, through the CLI.

A small sweep (cost at −1, 0, +1 over 8 held-out prompts, 32-token replies) keeps this to a minute or two
on a laptop CPU; the full sweeps of the shipped vectors are reported in docs/eval.md.
"""

import json

import pytest
import torch

from langchain_steer import SteeringVector
from langchain_steer.cli import main
from langchain_steer.dimensions import DIMENSIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cost_sweep(tmp_path_factory, demo):
    out = tmp_path_factory.mktemp("sweep")
    code = main(
        [
            "eval", "sweep", "--dimension", "cost", "--strengths", "-1", "0", "1", "--prompts", "8",
            "--max-tokens", "32", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_sweep_json_follows_the_schema(cost_sweep):
    data = json.loads((cost_sweep / "cost_sweep.json").read_text())
    assert data["schema"] == "langchain-steer/sweep@1"
    assert data["dimension"] == "cost" and data["poles"] == ["budget", "luxury"]
    assert data["scale"] == "strength" and data["model_id"]
    assert set(data["vector"]) == {"layers", "method", "functional_range", "negative_range"}
    assert [s["strength"] for s in data["summaries"]] == [-1.0, 0.0, 1.0]
    summary_keys = {
        "strength", "n", "empty", "effect", "effect_ci", "ppl", "ppl_ci", "ppl_ratio", "pne",
        "mean_tokens", "reference_ppl", "reference_ppl_ci", "reference_ppl_ratio",
    }  # fmt: skip
    for summary in data["summaries"]:
        assert set(summary) == summary_keys
        assert summary["n"] == 8
        low, high = summary["effect_ci"]
        assert low <= summary["effect"] <= high
        assert summary["ppl"] > 1
    assert len(data["samples"]) == 24
    sample_keys = {"prompt", "strengths", "text", "tokens", "effects", "nll", "reference_nll"}
    assert all(set(s) == sample_keys and s["text"] for s in data["samples"])
    assert len(data["settings"]["prompts"]) == 8
    assert -1 <= data["spearman"] <= 1


def test_cost_effect_is_monotone_in_strength(cost_sweep):
    data = json.loads((cost_sweep / "cost_sweep.json").read_text())
    effects = [s["effect"] for s in data["summaries"]]
    assert effects[0] < effects[1] < effects[2], effects
    assert data["spearman"] == pytest.approx(1.0)


def test_sweep_writes_valid_pngs_and_a_report(cost_sweep):
    from matplotlib.image import imread

    for name in ("cost_effect.png", "cost_ppl.png"):
        path = cost_sweep / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, channels = imread(path).shape
        assert height > 100 and width > 100 and channels in (3, 4)
    report = (cost_sweep / "cost_report.md").read_text()
    assert "Spearman" in report and "![effect](cost_effect.png)" in report


def test_calibrate_writes_both_ranges_back_into_the_vector_file(tmp_path, demo):
    from langchain_steer.dimensions import builtin_vectors

    original = builtin_vectors()["cost"]
    target = tmp_path / "cost.safetensors"
    original.save(target)
    before = target.read_bytes()
    code = main(
        [
            "eval", "calibrate", "--dimension", "cost", "--vectors", str(target), "--prompts", "4",
            "--max-tokens", "24", "--fractions", "0.01", "0.04",
            "--report", str(tmp_path / "report"),
        ]
    )  # fmt: skip
    assert code == 0
    assert target.read_bytes() != before
    calibrated = SteeringVector.load(target)
    details = calibrated.extra["calibration"]
    assert details["prompts"] == 4 and details["max_ratio"] == 1.3
    chosen = {"positive": calibrated.functional_range, "negative": calibrated.negative_side[1]}
    for side in ("negative", "positive"):
        checks = details["checks"][side]
        assert [c["norm"] for c in checks] == pytest.approx(
            [0.01 * details["residual_norm"], 0.04 * details["residual_norm"]], rel=1e-3
        )
        for check in checks:
            assert 0 <= check["pole_share"] <= 1 and 0 <= check["degenerate"] <= 1
            assert check["ppl_ratio"] > 0
        # The range is the last norm of the passing run that starts at the grid's first norm (the
        # command fails when even that one does not pass).
        passing = []
        for check in checks:
            if check["failed"]:
                break
            passing.append(check["norm"])
        assert passing and chosen[side] == pytest.approx(passing[-1], rel=1e-3)
        if len(passing) == len(checks):
            assert details["stopped_by"][side] == "end of grid"
        else:
            assert details["stopped_by"][side].startswith("0.04 of the residual norm")
    # Nothing else about the vector changed.
    assert calibrated.layers == original.layers and calibrated.poles == original.poles
    for layer, direction in original.directions.items():
        assert torch.equal(calibrated.directions[layer], direction)
    report = tmp_path / "report"
    assert json.loads((report / "cost_calibration.json").read_text())["checks"]
    assert "stopped" in (report / "cost_calibration.md").read_text()


def test_diagnose_reports_every_dimension(tmp_path, demo, capsys):
    assert main(["eval", "diagnose", "--out", str(tmp_path / "d")]) == 0
    data = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    assert set(data["names"]) == set(DIMENSIONS)
    assert all(len(v) == 30 for v in data["probe_accuracy"].values())
    for name, row in zip(data["names"], data["cosine"], strict=True):
        assert row[data["names"].index(name)] in (None, pytest.approx(1.0))
    # A few percent of the residual norm, not tens of percent.
    for per_layer in data["relative_norm"].values():
        assert all(0 < v < 0.2 for v in per_layer.values())
    assert (tmp_path / "d" / "cosine.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "Most entangled pair" in capsys.readouterr().out
