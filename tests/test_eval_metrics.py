"""evaluation.metrics against av-benchmark's own metric code (tests/fixtures/eval/metrics.md).

The golden file holds inputs and av-benchmark's outputs for direct calls of its FD / KL / IS
functions (``fd.*``, ``kl.*``, ``is.*``) and for one whole ``evaluate()`` run on synthetic caches
(``pipeline.*``); every number must be reproduced to 1e-6 relative.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from evaluation.metrics import DESYNC_GRID, desync, frechet_distance, ib_score, inception_score, kl_divergence

EVAL = Path(__file__).parent / "fixtures" / "eval"
GOLDEN = load_file(EVAL / "metrics_golden.safetensors")
INFO = json.loads((EVAL / "metrics_golden.json").read_text())
RTOL, ATOL = 1e-6, 1e-9  # ATOL only matters for the values that are 0 up to rounding


def _close(actual: float, expected: float) -> None:
    assert abs(actual - expected) <= RTOL * abs(expected) + ATOL, (actual, expected)


def _value(key: str) -> float:
    return float(GOLDEN[f"output.{key}"])


def _cases(prefix: str) -> list[str]:
    return sorted({k.split(".")[1] for k in INFO["cases"] if k.startswith(prefix + ".")})


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


# ------------------------------------------------------------------------------------------- FD


@pytest.mark.parametrize("case", [c for c in _cases("fd") if c not in ("imaginary", "one_dim")])
def test_frechet_distance_matches_av_benchmark(case):
    gen, gt = GOLDEN[f"input.fd.{case}.gen"], GOLDEN[f"input.fd.{case}.gt"]
    _close(_quiet(frechet_distance, gen, gt), _value(f"fd.{case}"))


def test_the_singular_case_has_fewer_clips_than_dimensions_and_is_finite():
    gen, gt = GOLDEN["input.fd.singular.gen"], GOLDEN["input.fd.singular.gt"]
    assert len(gen) < gen.shape[1] and len(gt) < gt.shape[1]
    assert not INFO["cases"]["fd.singular"]["retried"] and math.isfinite(_value("fd.singular"))


def test_fd_retries_with_the_diagonal_offset_where_av_benchmark_does():
    assert INFO["cases"]["fd.retry"]["retried"]  # the reference printed its "singular product" message
    with pytest.warns(RuntimeWarning, match="retrying with 1e-06 added to both diagonals"):
        value = frechet_distance(GOLDEN["input.fd.retry.gen"], GOLDEN["input.fd.retry.gt"])
    _close(value, _value("fd.retry"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and a well-conditioned case does not retry
        frechet_distance(GOLDEN["input.fd.basic.gen"], GOLDEN["input.fd.basic.gt"])


def test_fd_is_nan_with_a_reason_where_av_benchmark_reports_minus_one():
    assert _value("fd.imaginary") == -1 and "Imaginary component" in INFO["cases"]["fd.imaginary"]["printed"]
    with pytest.warns(RuntimeWarning, match=r"imaginary part of .* \(above 0.001.*reports -1"):
        value = frechet_distance(GOLDEN["input.fd.imaginary.gen"], GOLDEN["input.fd.imaginary.gt"])
    assert math.isnan(value)


def test_fd_of_one_dimensional_embeddings_is_the_closed_form():
    # av-benchmark returns -1 here under scipy >= 1.16: sqrtm(disp=False) of a 1x1 matrix returns no
    # error estimate, the tuple unpacking fails and compute_fd reports the ValueError as -1. Under
    # scipy 1.15.3 it returns this closed form (checked when the fixture was made, metrics.md).
    gen, gt = GOLDEN["input.fd.one_dim.gen"], GOLDEN["input.fd.one_dim.gt"]
    assert _value("fd.one_dim") == -1
    v_gen, v_gt = np.var(gen, ddof=1), np.var(gt, ddof=1)
    expected = float((gen.mean() - gt.mean()) ** 2 + v_gen + v_gt - 2 * np.sqrt(v_gen * v_gt))
    assert frechet_distance(gen, gt) == pytest.approx(expected, rel=1e-6)


def test_fd_rejects_what_it_cannot_compute():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="different widths: 4 and 5"):
        frechet_distance(rng.standard_normal((10, 4)), rng.standard_normal((10, 5)))
    with pytest.raises(ValueError, match="gen needs at least 2 rows"):
        frechet_distance(rng.standard_normal((1, 4)), rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match=r"gt must be 2-D"):
        frechet_distance(rng.standard_normal((10, 4)), rng.standard_normal(10))
    bad = rng.standard_normal((10, 4))
    bad[3, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="the gen embeddings hold NaN or inf"):
        assert math.isnan(frechet_distance(bad, rng.standard_normal((10, 4))))


# ------------------------------------------------------------------------------------------- KL


@pytest.mark.parametrize("case", _cases("kl"))
def test_kl_matches_av_benchmark(case):
    sets = sorted(k for k in GOLDEN if k.startswith(f"input.kl.{case}.pred"))
    # compute_kl loops over its list of generated sets and returns the LAST one's values only
    ours = kl_divergence(GOLDEN[sets[-1]], GOLDEN[f"input.kl.{case}.gt"])
    assert set(ours) == {"softmax", "sigmoid"}
    _close(ours["softmax"], _value(f"kl.{case}.kl_softmax"))
    _close(ours["sigmoid"], _value(f"kl.{case}.kl_sigmoid"))


def test_kl_is_gt_relative_to_generated_and_the_sigmoid_variant_can_be_negative():
    gt = np.array([[2.0, 0.0, -1.0]])
    pred = np.array([[0.0, 1.0, 3.0]])
    p, q = np.exp(gt) / np.exp(gt).sum(), np.exp(pred) / np.exp(pred).sum()
    assert kl_divergence(pred, gt)["softmax"] == pytest.approx(float((p * np.log(p / q)).sum()), rel=1e-12)
    assert kl_divergence(gt + 3.0, gt)["sigmoid"] < 0  # only the positive-class term: not a divergence
    with pytest.raises(ValueError, match="paired row for row"):
        kl_divergence(np.zeros((3, 5)), np.zeros((4, 5)))


# ------------------------------------------------------------------------------------------- IS


@pytest.mark.parametrize("case", [c for c in _cases("is") if c != "n7"])
def test_inception_score_matches_av_benchmark(case):
    info = INFO["cases"][f"is.{case}"]
    mean, std = inception_score(GOLDEN[f"input.is.{case}.logits"], info["splits"], info["seed"])
    _close(mean, _value(f"is.{case}.mean"))
    _close(std, _value(f"is.{case}.std"))


def test_inception_score_with_fewer_clips_than_splits_is_nan_as_in_av_benchmark():
    assert math.isnan(_value("is.n7.mean")) and math.isnan(_value("is.n7.std"))
    with pytest.warns(RuntimeWarning, match="7 clips for 10 splits"):
        mean, std = inception_score(GOLDEN["input.is.n7.logits"])
    assert math.isnan(mean) and math.isnan(std)


def test_inception_score_depends_on_the_shuffle_seed():
    logits = GOLDEN["input.is.n37.logits"]
    assert inception_score(logits, seed=2020) != inception_score(logits, seed=0)


# --------------------------------------------------------------------- the whole evaluate() run


def _pipeline(key: str) -> np.ndarray:
    return GOLDEN[f"input.pipeline.{key}"]


def _our_metrics() -> dict[str, float]:
    vgg_width = _pipeline("gt.vggish").shape[-1]
    isc_panns = inception_score(_pipeline("pred.pann_logits"))
    isc_passt = inception_score(_pipeline("pred.passt_logits"))
    return {
        # VGGish: every 0.96 s patch of every clip is one sample
        "FD-VGG": frechet_distance(_pipeline("pred.vggish").reshape(-1, vgg_width),
                                   _pipeline("gt.vggish").reshape(-1, vgg_width)),
        "FD-PANN": frechet_distance(_pipeline("pred.pann_2048"), _pipeline("gt.pann_2048")),
        "FD-PASST": frechet_distance(_pipeline("pred.passt_embed"), _pipeline("gt.passt_embed")),
        "KL-PANNS-softmax": kl_divergence(_pipeline("pred.pann_logits"), _pipeline("gt.pann_logits"))["softmax"],
        "KL-PASST-softmax": kl_divergence(_pipeline("pred.passt_logits"), _pipeline("gt.passt_logits"))["softmax"],
        "ISC-PANNS-mean": isc_panns[0], "ISC-PANNS-std": isc_panns[1],
        "ISC-PASST-mean": isc_passt[0], "ISC-PASST-std": isc_passt[1],
        "IB-Score": ib_score(_pipeline("gt.ib_video"), _pipeline("pred.ib_audio")),
        "DeSync": desync(_pipeline("offset_logits_first"), _pipeline("offset_logits_last")),
    }


def test_every_reported_metric_matches_av_benchmarks_evaluate():
    ours = _our_metrics()
    assert set(ours) == set(INFO["pipeline"]["metrics"])
    for key, value in ours.items():
        _close(value, _value(f"pipeline.{key}"))


def test_desync_uses_the_float32_grid_and_the_first_class_on_ties():
    np.testing.assert_array_equal(GOLDEN["output.pipeline.sync_grid"], DESYNC_GRID.astype(np.float32))
    first = _pipeline("offset_logits_first")
    tie = INFO["pipeline"]["tie_clip"]
    assert (first[tie] == first[tie, 0]).all()  # all-equal logits: the reference picked -2 s
    one = desync(first[tie:tie + 1], first[tie:tie + 1])
    assert one == 2.0
    assert desync(np.eye(21)[[10, 11]], np.eye(21)[[12, 0]]) == pytest.approx((0 + 0.2 + 0.4 + 2) / 4, rel=1e-7)
    assert desync(np.eye(21)[[11]], np.eye(21)[[11]]) == float(np.float32(0.2))  # not 0.2 itself


def test_desync_and_ib_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="20 classes for a grid of 21 offsets"):
        desync(np.zeros((2, 20)), np.zeros((2, 20)))
    with pytest.raises(ValueError, match="same clips: 2 and 3 rows"):
        desync(np.zeros((2, 21)), np.zeros((3, 21)))
    with pytest.raises(ValueError, match="paired row for row"):
        ib_score(np.ones((2, 8)), np.ones((3, 8)))
    assert ib_score(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [-1.0, -1.0]])) == pytest.approx(0.0)
