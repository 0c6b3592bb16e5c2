"""Range calibration: the choice rule, and the whole method on a tiny random model.

The tiny model writes gibberish, so the end-to-end tests loosen the limits and check the mechanics; the
behaviour is measured on the demo model (tests/integration_tests/test_steering_demo.py).
"""

import math

import pytest
from helpers import hook_count, random_vector

from langchain_steer import SteeringVector
from langchain_steer.eval.judge import PoleJudge
from langchain_steer.eval.range_calibration import (
    calibrate_range,
    choose_norm,
    median_residual_norm,
)
from langchain_steer.eval.settings import ReplySettings

JUDGE = PoleJudge("cost", ("budget", "luxury"), {"negative": ("cheap",), "positive": ("luxury",)})
INSTRUCTIONS = {"negative": "Cheap please.", "positive": "Luxury please."}


def check(fraction, share, ratio, degenerate=0.0, reference=None):
    return {
        "fraction": fraction,
        "norm": fraction * 100,
        "pole_share": share,
        "ppl_ratio": ratio,
        "degenerate": degenerate,
        "reference_ppl_ratio": reference,
    }


def test_choose_norm_takes_the_largest_contiguous_passing_norm():
    checks = [
        check(0.01, 0.2, 1.1),
        check(0.02, 0.5, 1.3),
        check(0.03, 0.7, 1.6),
        check(0.04, 0.9, 1.2),
    ]
    norm, failed, stopped = choose_norm(checks, max_ratio=1.4)
    assert norm == 2.0 and failed[2] == ["ppl ratio 1.60 > 1.4"] and failed[3] == []
    assert stopped.startswith("0.03 of the residual norm: ppl ratio 1.60")
    assert choose_norm(checks, max_ratio=1.7)[0] == 4.0
    assert choose_norm(checks, max_ratio=1.7)[2] == "end of grid"


def test_choose_norm_checks_degeneration_the_pole_share_and_the_reference():
    degenerate = [check(0.01, 0.3, 1.0), check(0.02, 0.6, 1.0, degenerate=0.1)]
    assert choose_norm(degenerate)[0] == 1.0
    assert choose_norm(degenerate, max_degenerate=0.1)[0] == 2.0
    falling = [check(0.01, 0.8, 1.0), check(0.02, 0.75, 1.0), check(0.03, 0.5, 1.0)]
    norm, failed, _ = choose_norm(falling)
    assert norm == 2.0 and "pole share fell from 80% to 50%" in failed[2][0]
    reference = [check(0.01, 0.5, 1.0, reference=1.2), check(0.02, 0.6, 1.0, reference=2.0)]
    assert choose_norm(reference, max_reference_ratio=1.5)[0] == 1.0
    assert choose_norm([check(0.01, 0.5, math.nan)])[0] == 0.0


def calibrated(llama, tokenizer, system=None, **kwargs):
    vector = random_vector(llama, layers=(0, 1, 2))
    settings = {
        "prompts": ["Hi", "Gift?", "Trip?"],
        "judge": JUDGE,
        "instructions": INSTRUCTIONS,
        "fractions": (0.05, 0.1),
        "residual_norm": 1.0,
        "max_ratio": 1e6,
        "max_degenerate": 1.0,
        "settings": ReplySettings(system=system, max_new_tokens=6, progress=False),
        **kwargs,
    }
    return calibrate_range(llama, tokenizer, vector, **settings)


def test_calibrate_range_on_a_tiny_model(llama, tokenizer, tmp_path):
    outcome = calibrated(llama, tokenizer, system="be brief")
    assert outcome.functional_range == pytest.approx(
        0.1
    ) and outcome.negative_range == pytest.approx(0.1)
    vector = outcome.vector
    assert vector.functional_range == pytest.approx(0.1) and vector.symmetric  # both sides agree
    details = vector.extra["calibration"]
    assert details["residual_norm"] == 1.0 and details["system_prompt"] == "be brief"
    assert [c["fraction"] for c in details["checks"]["positive"]] == [0.05, 0.1]
    assert set(details["stopped_by"]) == {"negative", "positive"}
    assert len(outcome.replies["negative"][0.05]) == 3
    assert hook_count(llama) == 0
    loaded = SteeringVector.load(vector.save(tmp_path / "cost.safetensors"))
    assert loaded.extra["calibration"]["checks"] == details["checks"]


def test_calibrate_range_explains_a_failure(llama, tokenizer):
    with pytest.raises(ValueError, match="no grid norm qualifies.*smaller fractions"):
        calibrated(llama, tokenizer, max_ratio=1.0 + 1e-9, max_degenerate=0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.0, 0.1)}, "fractions"),
        ({"prompts": []}, "at least one prompt"),
        ({"residual_norm": None}, "records no residual norm"),
        ({"max_reference_ratio": 1.5}, "together"),
    ],
)
def test_calibrate_range_rejects_bad_settings(llama, tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        calibrated(llama, tokenizer, **kwargs)


def test_median_residual_norm_reads_what_extraction_recorded(llama):
    vector = random_vector(llama, layers=(0, 1, 2))
    assert median_residual_norm(vector) is None
    recorded = SteeringVector(
        vector.directions, extra={"residual_norm": {"0": 3.0, "1": 5.0, "2": 4.0}}
    )
    assert median_residual_norm(recorded) == 4.0


def test_redecide_range_rereads_saved_checks_under_new_limits(llama):
    from langchain_steer.eval.range_calibration import redecide_range

    vector = random_vector(llama)
    checks = [check(0.01, 0.2, 1.1), check(0.02, 0.5, 1.3), check(0.03, 0.7, 1.6)]
    saved = {"checks": {"negative": checks[:2], "positive": checks}, "details": {"grid": "g"}}
    strict = redecide_range(vector, saved, max_ratio=1.2)
    assert strict.functional_range == 1.0 and strict.negative_side[1] == 1.0
    loose = redecide_range(vector, saved, max_ratio=1.7)
    assert loose.functional_range == 3.0 and loose.negative_side[1] == 2.0
    assert loose.extra["calibration"] == {"grid": "g", "max_ratio": 1.7, "re_decided": True}
    assert vector.functional_range == 4.0  # value semantics: the input is unchanged
    with pytest.raises(ValueError, match="no saved grid norm qualifies on the negative side"):
        redecide_range(vector, saved, max_ratio=1.0)
    with pytest.raises(ValueError, match="not a saved calibration report"):
        redecide_range(vector, {"checks": {}})
