"""The sampling presets come from a measurement: ``benchmarks.sampling`` measures a grid of sampler settings,
``benchmarks.sampling_report`` chooses ``fast`` and ``turbo`` from it by stated rules, and
``SAMPLING_PRESETS`` carries what it chose (``docs/sampling/choice.json``)."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.sampling_grid import REFERENCE, SCHEDULERS, Setting, grid, shortlist
from benchmarks.sampling_report import across_seeds, choose, pareto_frontier

CHOICE = Path(__file__).resolve().parents[1] / "docs" / "sampling" / "choice.json"


def _row(scheduler, steps, guidance, fd, accuracy, seconds, evaluations=None):
    evaluations = evaluations if evaluations is not None else steps * (2 if guidance > 1 else 1)
    return {"key": f"{scheduler}/{steps}/{guidance:g}", "scheduler": scheduler, "steps": steps, "guidance": guidance,
            "fd": fd, "class_accuracy": accuracy, "seconds_per_clip": seconds, "unet_evaluations_per_clip": evaluations,
            "event_sync_error_s": 0.5, "inception_score": 1.5, "clips": 30, "machine": "test"}


def test_the_rules_pick_the_cheapest_close_setting_and_the_best_cheap_one():
    rows = [_row("ddim", 100, 3.5, fd=7.5, accuracy=0.90, seconds=3.0),
            _row("dpmpp_2m", 25, 3.5, fd=7.8, accuracy=0.89, seconds=0.8),   # within 5 % and 0.02: fast
            _row("unipc", 12, 3.5, fd=7.9, accuracy=0.87, seconds=0.4),      # 0.03 below the best accuracy
            _row("euler", 8, 1.0, fd=12.0, accuracy=0.80, seconds=0.2),      # 8 evaluations
            _row("dpmpp_2m", 4, 3.5, fd=10.0, accuracy=0.83, seconds=0.2),   # 8 evaluations, better FD: turbo
            _row("heun", 4, 3.5, fd=9.0, accuracy=0.9, seconds=0.3, evaluations=14)]  # too many evaluations
    chosen = choose(rows)
    assert chosen["fast"]["key"] == "dpmpp_2m/25/3.5"
    assert chosen["turbo"]["key"] == "dpmpp_2m/4/3.5"
    assert chosen["reference"]["key"] == "ddim/100/3.5"
    # from the fastest, each one closer than every faster one (euler/8/1 is as fast as dpmpp_2m/4/3.5 and farther)
    assert [r["key"] for r in pareto_frontier(rows)] == ["dpmpp_2m/4/3.5", "heun/4/3.5", "unipc/12/3.5",
                                                         "dpmpp_2m/25/3.5", "ddim/100/3.5"]


def test_when_the_most_accurate_setting_is_far_in_fd_fast_keeps_to_the_fd_close_ones():
    rows = [_row("ddim", 100, 3.5, fd=7.5, accuracy=0.87, seconds=3.0),
            _row("deis", 25, 3.5, fd=7.6, accuracy=0.90, seconds=0.9),
            _row("unipc", 16, 3.5, fd=7.7, accuracy=0.87, seconds=0.6),   # 0.03 below the FD-close best
            _row("euler", 4, 5.0, fd=11.0, accuracy=1.00, seconds=0.3)]   # the most accurate, far in FD
    assert choose(rows)["fast"]["key"] == "deis/25/3.5"


def test_the_grid_runs_the_reference_first_then_from_the_cheapest():
    settings = grid(("ddim", "heun"), (4, 100), (1.0, 3.5))
    assert settings[0] == Setting(*REFERENCE) and len(settings) == len(set(settings)) == 8
    work = [s.unet_evaluations for s in settings[1:]]
    assert work == sorted(work) and Setting("heun", 4, 1.0).unet_evaluations == 7  # 2 x 4 - 1
    assert Setting("ddim", 4, 3.5).unet_evaluations == 8 and Setting.of("heun/4/3.5") == Setting("heun", 4, 3.5)
    for setting in settings:  # every setting is a valid sampling config of AudioLDM-2's schedule
        config = setting.config()
        assert config.scheduler == SCHEDULERS[setting.scheduler][0] and config.num_inference_steps == setting.steps


def test_the_presets_are_the_measured_choice():
    from mapper.generation.sampling import SAMPLING_PRESETS

    choice = json.loads(CHOICE.read_text())
    assert choice["cheap_settings_complete"]  # every setting turbo may be is measured
    # fast's rule needs the best FD of the whole grid: final once every setting is measured; until then the
    # preset stays the pre-measurement one (DPM-Solver++ 2M, 25 steps) and choice.json says so
    names = ("fast", "turbo") if choice["complete"] else ("turbo",)
    if not choice["complete"]:
        fast = SAMPLING_PRESETS["fast"]
        assert (fast.scheduler, fast.num_inference_steps, fast.guidance_scale) == ("DPMSolverMultistepScheduler", 25, 3.5)
    for name in names:
        measured, preset = choice[name], SAMPLING_PRESETS[name]
        assert (preset.scheduler, dict(preset.scheduler_kwargs), preset.num_inference_steps, preset.guidance_scale) == (
            measured["scheduler"], measured["scheduler_kwargs"], measured["num_inference_steps"],
            measured["guidance_scale"]), name
    assert SAMPLING_PRESETS["paper"].scheduler == "DDIMScheduler" and SAMPLING_PRESETS["paper"].num_inference_steps == 100


def test_the_report_gives_each_seeds_scores_their_mean_and_the_ratio_to_the_reference(tmp_path):
    from benchmarks.sampling_report import write_report

    rows = [_row("ddim", 100, 3.5, fd=8.0, accuracy=0.80, seconds=3.0),
            _row("euler_a", 4, 5.0, fd=8.8, accuracy=0.90, seconds=0.3)]
    seeds = {"clips": 30, "machine": "test", "rows": {
        "ddim/100/3.5": {"0": {"fd": 8.0, "class_accuracy": 0.80, "event_sync_error_s": 0.5},
                         "100": {"fd": 6.0, "class_accuracy": 1.00, "event_sync_error_s": 0.5}},
        "euler_a/4/5": {"0": {"fd": 8.8, "class_accuracy": 0.90, "event_sync_error_s": 0.5},
                        "100": {"fd": 5.2, "class_accuracy": 0.90, "event_sync_error_s": 0.5},
                        "200": {"fd": 9.0, "class_accuracy": 0.60, "event_sync_error_s": 0.5}}}}
    (tmp_path / "seeds.json").write_text(json.dumps(seeds))
    write_report(tmp_path, {r["key"]: r for r in rows}, [r["key"] for r in rows])
    page = (tmp_path / "sampling.md").read_text()
    assert "| offset 0 | offset 100 | offset 200 | mean | mean vs DDIM-100 |" in page
    # the ratio uses the offsets the reference has too: (8.8 + 5.2) / 2 = 7.0 against 7.0
    assert "| euler_a/4/5 | 8.80 / 0.90 | 5.20 / 0.90 | 9.00 / 0.60 | 7.67 / 0.80 | FD x1.00, class x1.00 |" in page
    assert "| ddim/100/3.5 | 8.00 / 0.80 | 6.00 / 1.00 |  | 7.00 / 0.90 |  |" in page


def test_the_shortlist_keeps_the_settings_close_in_fd_and_class_among_all_and_among_the_cheap():
    rows = [_row("ddim", 100, 3.5, fd=7.8, accuracy=0.90, seconds=3.0),       # 30 % above the best FD
            _row("euler", 25, 5.0, fd=6.0, accuracy=0.93, seconds=1.0),       # the best FD
            _row("euler_a", 25, 5.0, fd=7.4, accuracy=0.87, seconds=1.0),     # within 25 % and 0.07 of 0.93
            _row("euler_a", 100, 5.0, fd=6.1, accuracy=0.77, seconds=3.0),    # close in FD, far in class
            _row("heun", 25, 5.0, fd=7.6, accuracy=0.97, seconds=2.0),        # 27 % above the best FD
            _row("deis", 4, 5.0, fd=9.0, accuracy=0.97, seconds=0.3),         # cheap: their best FD
            _row("unipc", 4, 5.0, fd=11.0, accuracy=0.97, seconds=0.3),       # 22 % above it
            _row("euler", 4, 5.0, fd=12.0, accuracy=0.97, seconds=0.3)]       # 33 % above it
    assert shortlist(rows) == ["euler/25/5", "euler_a/25/5", "deis/4/5", "unipc/4/5"]


def _seeds(scores: dict) -> dict:
    """seeds.json rows: {key: {offset: (fd, accuracy)}}."""
    return {"clips": 30, "machine": "test", "mapper_sha256": "m", "rows": {
        key: {offset: {"fd": fd, "class_accuracy": accuracy, "event_sync_error_s": 0.5}
              for offset, (fd, accuracy) in per.items()} for key, per in scores.items()}}


def test_the_presets_are_chosen_from_seed_means_once_every_shortlisted_setting_has_every_seed(tmp_path):
    from benchmarks.sampling_report import write_report

    rows = [_row("ddim", 100, 3.5, fd=7.5, accuracy=0.87, seconds=3.0),
            _row("euler_a", 25, 5.0, fd=5.4, accuracy=0.93, seconds=1.1),   # the best FD at the grid's seed
            _row("euler", 25, 5.0, fd=6.5, accuracy=0.93, seconds=1.2),
            _row("euler_a", 4, 5.0, fd=7.6, accuracy=0.97, seconds=0.4),
            _row("deis", 4, 5.0, fd=8.0, accuracy=0.97, seconds=0.3)]
    assert choose(rows)["fast"]["key"] == "euler_a/25/5"
    scores = {"ddim/100/3.5": {"0": (7.5, 0.87), "100": (7.2, 0.77)},
              "euler_a/25/5": {"0": (5.4, 0.93), "100": (9.0, 0.87)},   # mean 7.2
              "euler/25/5": {"0": (6.5, 0.93), "100": (5.9, 0.90)},     # mean 6.2: the best
              "euler_a/4/5": {"0": (7.6, 0.97), "100": (7.2, 0.93)},
              "deis/4/5": {"0": (8.0, 0.97)}}                             # one seed missing
    assert across_seeds(rows, _seeds(scores)) is None
    write_report(tmp_path, {r["key"]: r for r in rows}, [r["key"] for r in rows])
    assert json.loads((tmp_path / "choice.json").read_text())["fast"]["name"] == "euler_a"  # no seed file yet
    (tmp_path / "seeds.json").write_text(json.dumps(_seeds(scores)))
    write_report(tmp_path, {r["key"]: r for r in rows}, [r["key"] for r in rows])
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert choice["fast"]["name"] == "euler_a" and choice["chosen_from"].startswith("the grid's one seed")

    scores["deis/4/5"]["100"] = (6.8, 0.97)  # mean 7.4: now the best cheap setting
    means = across_seeds(rows, _seeds(scores))
    assert {r["key"] for r in means} == {r["key"] for r in rows}  # all five shortlisted, the reference too
    euler = next(r for r in means if r["key"] == "euler/25/5")
    assert euler["fd"] == 6.2 and abs(euler["class_accuracy"] - 0.915) < 1e-12 and "inception_score" not in euler
    (tmp_path / "seeds.json").write_text(json.dumps(_seeds(scores)))
    write_report(tmp_path, {r["key"]: r for r in rows}, [r["key"] for r in rows])
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert (choice["fast"]["name"], choice["fast"]["measured"]["fd"]) == ("euler", 6.2)
    assert (choice["turbo"]["name"], choice["turbo"]["measured"]["fd"]) == ("deis", 7.4)
    assert choice["chosen_from"].startswith("means over seed offsets 0, 100 of the 5 settings")
    assert abs(choice["fast"]["against_reference"]["fd"] - 6.2 / 7.35) < 1e-12  # against the reference's mean
