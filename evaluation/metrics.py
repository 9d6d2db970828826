"""The metric maths of V2A papers, number for number as MMAudio's av-benchmark computes it.

Plain functions on arrays of embeddings or logits (one row per audio clip), checked against
av-benchmark's own functions (commit 050a5cd) run on the same inputs:
``tests/test_eval_metrics.py`` with ``tests/fixtures/eval/metrics_golden.safetensors`` (provenance:
``tests/fixtures/eval/metrics.md``). Where the reference computes in float32 (KL, IB-score: torch on
the cached float32 features; the FD mean) these functions compute in the input's dtype too, so
pass the float32 features to get the published numbers and float64 for the exact value.

Deliberate differences, all in FD's failure paths: where av-benchmark's FD meets a large imaginary
part, NaN embeddings or a sqrtm error it prints the error and reports -1, a number that looks like
a (very good) score; ``frechet_distance`` returns NaN and warns why instead. It also computes
1-D embeddings, which av-benchmark reports as -1 under scipy >= 1.16 (see its docstring).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

FD_DIAGONAL_EPS = 1e-6  # added to both covariance diagonals when sqrtm of their product is not finite
FD_IMAGINARY_ATOL = 1e-3  # largest |imaginary part| on sqrtm's diagonal treated as rounding (absolute!)
DESYNC_GRID = np.linspace(-2.0, 2.0, 21)  # Synchformer's offset classes, seconds
IS_SPLITS, IS_SEED = 10, 2020


def _rows(array, name: str, min_rows: int = 1) -> np.ndarray:
    """``array`` as a 2-D (N, D) numeric numpy array with N >= min_rows; ValueError otherwise."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (clips, dims), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (clips), got {array.shape[0]}")
    return array


def _same_width(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have different widths: {a.shape[1]} and {b.shape[1]}")


def frechet_distance(gen: np.ndarray, gt: np.ndarray) -> float:
    """FD between Gaussians fitted to generated (N, D) and reference (M, D) embeddings.

    ``|mu_gen - mu_gt|² + tr(S_gen) + tr(S_gt) - 2 tr sqrtm(S_gen S_gt)`` with ``np.cov`` (N - 1
    normalisation) and ``scipy.linalg.sqrtm``, in av-benchmark's order of operations
    (``metrics/fad.py``, from pytorch-fid): the means are taken in the input's dtype (float32 for
    cached features: av-benchmark's mean term is float32), the covariances in float64. If sqrtm of
    the product is not finite (it happens with few clips and dead ReLU units), 1e-6 is added to both
    diagonals and sqrtm is retried, with a warning. A complex result whose diagonal has an imaginary
    part above 1e-3 (an absolute bound, so large-scale embeddings with fewer clips than dimensions
    reach it) gives NaN with a warning where av-benchmark returns -1; below it the real part is used.
    NaN / inf embeddings and sqrtm failures are NaN with a warning too (av-benchmark: -1).

    Two reference failures that are not reproduced: av-benchmark calls ``sqrtm(..., disp=False)``,
    deprecated in scipy 1.16 and due to go in 1.18 (a TypeError compute_fd does not catch); and under
    scipy >= 1.16 that call returns no error estimate for a 1×1 matrix, so it reports -1 for
    one-dimensional embeddings. Here sqrtm is called without ``disp`` (same matrix) and 1-D
    embeddings get their FD, as av-benchmark under scipy 1.15 does.
    """
    gen, gt = _rows(gen, "gen", 2), _rows(gt, "gt", 2)
    _same_width(gen, gt, "gen and gt embeddings")
    for name, x in (("gen", gen), ("gt", gt)):
        if not np.isfinite(x).all():  # av-benchmark: scipy's sqrtm raises, compute_fd reports -1
            warnings.warn(f"FD is undefined: the {name} embeddings hold NaN or inf; returning NaN where "
                          f"av-benchmark reports -1", RuntimeWarning, stacklevel=2)
            return float("nan")
    mu_gen, mu_gt = np.mean(gen, axis=0), np.mean(gt, axis=0)  # (D,) in the input dtype
    sigma_gen = np.atleast_2d(np.cov(gen, rowvar=False))  # (D, D) float64
    sigma_gt = np.atleast_2d(np.cov(gt, rowvar=False))
    diff = mu_gen - mu_gt

    with warnings.catch_warnings():  # scipy's "singular matrix" warning: the checks below say more
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(sigma_gen.dot(sigma_gt))
            if not np.isfinite(covmean).all():
                warnings.warn(f"FD: sqrtm of the covariance product is not finite (singular covariances: "
                              f"{len(gen)} and {len(gt)} clips, {gen.shape[1]} dims); retrying with "
                              f"{FD_DIAGONAL_EPS} added to both diagonals, as av-benchmark does", RuntimeWarning,
                              stacklevel=2)
                offset = np.eye(sigma_gen.shape[0]) * FD_DIAGONAL_EPS
                covmean = linalg.sqrtm((sigma_gen + offset).dot(sigma_gt + offset))
        except linalg.LinAlgError as error:  # a ValueError: av-benchmark reports -1
            warnings.warn(f"FD is undefined: scipy.linalg.sqrtm failed ({error}); returning NaN where "
                          f"av-benchmark reports -1", RuntimeWarning, stacklevel=2)
            return float("nan")

    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if not imaginary <= FD_IMAGINARY_ATOL:  # also catches NaN
            warnings.warn(f"FD is undefined here: sqrtm of the covariance product has an imaginary part "
                          f"of {imaginary:.3g} on its diagonal (above {FD_IMAGINARY_ATOL}; {len(gen)} and "
                          f"{len(gt)} clips for {gen.shape[1]} dims); returning NaN where av-benchmark "
                          f"reports -1", RuntimeWarning, stacklevel=2)
            return float("nan")
        covmean = covmean.real
    value = float(diff.dot(diff) + np.trace(sigma_gen) + np.trace(sigma_gt) - 2 * np.trace(covmean))
    if not np.isfinite(value):
        warnings.warn(f"FD is not finite ({value}): the covariances overflow or stay singular after the retry",
                      RuntimeWarning, stacklevel=2)
    return value


def _tensor(array, name: str) -> torch.Tensor:
    """(N, D) rows as a torch tensor of the input's float dtype (integers become float64)."""
    array = _rows(array, name)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(array))


def kl_divergence(pred_logits: np.ndarray, gt_logits: np.ndarray) -> dict[str, float]:
    """KL(gt ‖ generated) per clip, summed over classes and averaged over the N paired clips.

    ``pred_logits`` and ``gt_logits`` are (N, C) classifier logits of paired clips (row i of each
    from the same video). As av-benchmark's ``metrics/kl.py`` (AudioGen's formulation, no epsilon),
    in the input's dtype:

    * ``"softmax"`` (the reported KL-PANNS / KL-PASST): ``Σ p_gt (log p_gt − log p_pred) / N`` with
      ``p = softmax(logits)`` over the C classes;
    * ``"sigmoid"`` (computed there, not reported): the same sum with ``p = sigmoid(logits)`` per
      class. It keeps only the positive-class term of each Bernoulli, so it is not a divergence and
      can be negative.
    """
    pred, gt = _tensor(pred_logits, "pred_logits"), _tensor(gt_logits, "gt_logits")
    if pred.shape != gt.shape:
        raise ValueError(f"pred_logits and gt_logits must be paired row for row: shapes {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    n = pred.shape[0]
    out = {}
    for name, log_prob in (("softmax", lambda x: F.log_softmax(x, dim=1)), ("sigmoid", F.logsigmoid)):
        log_p_pred, log_p_gt = log_prob(pred), log_prob(gt)  # (N, C)
        out[name] = float((log_p_gt.exp() * (log_p_gt - log_p_pred)).sum() / n)
    return out


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = IS_SEED) -> tuple[float, float]:
    """(mean, std) over ``splits`` groups of ``exp(mean_i KL(p_i ‖ p̄))``, p = softmax of (N, C) logits.

    As av-benchmark's ``metrics/isc.py`` (from torch-fidelity): rows shuffled with
    ``np.random.RandomState(seed).permutation(N)``, then float64 softmax; split k is rows
    ``[k·N//splits, (k+1)·N//splits)`` with p̄ its own mean distribution; population ``np.std``.
    With fewer clips than splits some groups are empty and, as there, the score is NaN (warned).
    The score depends on the row order: av-benchmark's is the generated files sorted by name
    (``extract.py``), for ISC-PASST in paired mode only those with a reference.
    """
    x = _tensor(logits, "logits")
    n = x.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise ValueError(f"splits must be a positive int, got {splits!r}")
    if n < splits:
        warnings.warn(f"IS: {n} clips for {splits} splits leaves empty splits; the score is NaN "
                      f"(as in av-benchmark)", RuntimeWarning, stacklevel=2)
    x = x[np.random.RandomState(seed).permutation(n)].double()  # (N, C), shuffled
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's "mean of empty slice" for empty splits
        for k in range(splits):
            rows = slice(k * n // splits, (k + 1) * n // splits)
            p_mean = p[rows].mean(dim=0, keepdim=True)  # (1, C)
            kl = (p[rows] * (log_p[rows] - p_mean.log())).sum(dim=1)  # (rows,)
            scores.append(kl.mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def ib_score(video_embeddings: np.ndarray, audio_embeddings: np.ndarray) -> float:
    """Mean cosine similarity of paired (N, D) ImageBind video and audio embeddings.

    As av-benchmark's ``evaluate.py``: ``torch.cosine_similarity(video, audio, dim=-1).mean()`` in
    the input's dtype (eps 1e-8). A cosine, in [-1, 1]; papers usually print it ×100.
    """
    video, audio = _tensor(video_embeddings, "video_embeddings"), _tensor(audio_embeddings, "audio_embeddings")
    if video.shape != audio.shape:
        raise ValueError(f"video and audio embeddings must be paired row for row: shapes {tuple(video.shape)} "
                         f"and {tuple(audio.shape)}")
    return float(torch.cosine_similarity(video, audio, dim=-1).mean())


def desync(offset_logits_first: np.ndarray, offset_logits_last: np.ndarray, grid=DESYNC_GRID) -> float:
    """Mean |predicted audio-visual offset| in seconds over the 2N predictions of N clips.

    ``offset_logits_first`` / ``_last``: (N, len(grid)) Synchformer offset logits for each clip's
    first and last 14 segments (av-benchmark's ``evaluate.py``: ``compare_v_a`` on segments ``[:14]``
    and ``[-14:]``, 0–4.8 s and 3.2–8 s of an 8 s clip). Each row votes for the offset of its
    argmax (the first on ties); the offsets are the grid values rounded to float32, as
    ``make_class_grid`` stores them.
    """
    first, last = _rows(offset_logits_first, "offset_logits_first"), _rows(offset_logits_last, "offset_logits_last")
    grid = np.asarray(grid, dtype=np.float64).astype(np.float32).astype(np.float64)  # (classes,)
    if grid.ndim != 1:
        raise ValueError(f"grid must be 1-D, got shape {grid.shape}")
    for name, logits in (("offset_logits_first", first), ("offset_logits_last", last)):
        if logits.shape[1] != len(grid):
            raise ValueError(f"{name} has {logits.shape[1]} classes for a grid of {len(grid)} offsets")
    if first.shape[0] != last.shape[0]:
        raise ValueError(f"offset_logits_first and offset_logits_last must cover the same clips: "
                         f"{first.shape[0]} and {last.shape[0]} rows")
    offsets = grid[np.concatenate([first.argmax(axis=1), last.argmax(axis=1)])]  # (2N,)
    return float(np.mean(np.abs(offsets)))
