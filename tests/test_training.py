"""Training recipes: every config parses, every ablation trains, the global batch is kept across
device counts, DDP matches one process, kill -9 + resume matches an uninterrupted run, NaN stops."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mapper.training import plan_batches
from recipes import train_mapper

CONFIGS = Path(train_mapper.__file__).parent / "configs"
ABLATIONS = sorted((CONFIGS / "ablations").glob("*.yaml"))


def run_args(cache, work, *extra):
    """A short run on the cached toy world, no toy-world building, no sample rendering."""
    return [
        "--config", str(CONFIGS / "toy.yaml"), *extra,
        "--data.toy_world", "null", "--data.cache", str(cache), "--data.batch_size", "4",
        "--trainer.default_root_dir", str(work), "--trainer.logger.init_args.save_dir", str(work),
        "--export_dir", str(work / "mapper"),
    ]  # fmt: skip


def test_paper_config_shows_the_paper_hyper_parameters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_mapper.main(["--config", str(CONFIGS / "paper.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    import yaml

    config = yaml.safe_load(capsys.readouterr().out)
    mapper = config["model"]["mapper"]
    assert config["model"]["lr"] == 1e-3 and mapper["n_layer"] == 12 and mapper["loss"] == "mse"
    assert config["trainer"]["max_epochs"] == 40 and config["data"]["batch_size"] == 48
    assert config["model"]["init_language_model"] == "cvssp/audioldm2" and config["data"]["preset"] == "paper"
    assert config["model"]["audioldm2"] is None  # the preset's decoder, not the toy default it is layered on


@pytest.mark.slow
@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda p: p.stem)
def test_every_ablation_config_trains_on_the_toy_world(ablation, toy_cache, tmp_path):
    args = run_args(toy_cache, tmp_path, "--config", str(ablation), "--trainer.max_epochs", "1")
    metrics = train_mapper.main(args)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert (tmp_path / "mapper" / "model.safetensors").is_file()


def test_invalid_ablation_value_is_a_clear_error(toy_cache, tmp_path, capsys):
    assert train_mapper.main(run_args(toy_cache, tmp_path, "--model.mapper.fusion", "sum")) == 2
    assert "fusion must be one of concat_proj, add, time_cat, got 'sum'" in capsys.readouterr().err


def test_global_batch_is_kept_whatever_the_device_count():
    assert plan_batches(48, 1) == plan_batches(48, 1, None)
    for devices in (1, 2, 3, 4, 6):
        plan = plan_batches(48, devices, max_device_batch=8)
        assert plan.world_size * plan.device_batch * plan.accumulation == 48 and plan.device_batch <= 8
    with pytest.raises(ValueError, match="not divisible by 5 devices"):
        plan_batches(48, 5)


def _final_weights(work: Path) -> dict:
    return load_file(work / "mapper" / "model.safetensors")


def _assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def _cli(args, env_extra=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "recipes.train_mapper", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(toy_cache, tmp_path):
    every_step = tmp_path / "every_step.yaml"
    every_step.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {dirpath: CKPT, monitor: null, save_last: true, every_n_train_steps: 1, save_top_k: -1}\n"
    )
    runs = {}
    for name in ("straight", "killed"):
        work = tmp_path / name
        config = work / "every_step.yaml"
        work.mkdir()
        config.write_text(every_step.read_text().replace("CKPT", str(work / "ckpt")))
        runs[name] = run_args(toy_cache, work, "--config", str(config), "--trainer.max_epochs", "8")
    straight = _cli(runs["straight"])
    assert straight.wait(timeout=600) == 0, straight.stdout.read()
    steps_per_epoch = len(list((tmp_path / "straight" / "ckpt").glob("epoch=0-step=*.ckpt")))

    killed = _cli(runs["killed"])
    ckpt_dir = tmp_path / "killed" / "ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpt_dir.glob("epoch=2-step=*.ckpt")):
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "mapper").exists(), "the run finished before it could be killed"
    # Resume from the newest checkpoint that lies strictly inside an epoch.
    step_of = {p: int(p.stem.split("=")[-1]) for p in ckpt_dir.glob("epoch=*-step=*.ckpt")}
    mid_epoch = max((p for p, step in step_of.items() if step % steps_per_epoch), key=step_of.get)
    resumed = _cli(runs["killed"] + ["--ckpt_path", str(mid_epoch)])
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    _assert_same_weights(_final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed"), atol=1e-5)


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(toy_cache, tmp_path):
    results = {}
    for devices in (1, 2):
        work = tmp_path / f"devices{devices}"
        args = run_args(toy_cache, work, "--trainer.max_epochs", "2", "--trainer.devices", str(devices),
                        "--trainer.strategy", "ddp" if devices > 1 else "auto")  # fmt: skip
        process = _cli(args)
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output
        assert f"global batch 4 = {devices} device(s) x {4 // devices} per device" in output
        results[devices] = _final_weights(work)
    _assert_same_weights(results[1], results[2], atol=1e-4)


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(toy_cache, tmp_path):
    from mapper.training import MapperModule

    original = MapperModule._step
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        loss = original(self, batch)
        return loss * float("nan") if self.trainer.training and self.global_step >= 3 else loss

    every_step = tmp_path / "every_step.yaml"
    every_step.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {tmp_path / 'ckpt'}, monitor: null, save_last: true, every_n_train_steps: 1}}\n"
    )
    MapperModule._step = poisoned
    try:
        with pytest.raises(FloatingPointError, match="training loss is nan at step 3"):
            train_mapper.main(run_args(toy_cache, tmp_path, "--config", str(every_step), "--trainer.max_epochs", "5"))
    finally:
        MapperModule._step = original
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_default_toy_recipe_beats_both_baselines_by_the_required_margins(tmp_path):
    """The README's main command (toy.yaml as is, paths moved to tmp): the mapper must cut the mean
    predictor's held-out MSE by >= 30% and the shuffled-video predictor's by >= 20%."""
    metrics = train_mapper.main([
        "--data.toy_world.root", str(tmp_path / "world"), "--data.cache", str(tmp_path / "cache"),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--export_dir", str(tmp_path / "mapper"), "--sample_steps", "2", "--toy_report_clips", "0",
    ])  # fmt: skip
    assert metrics["mse"] <= 0.7 * metrics["mse_mean_baseline"], metrics
    assert metrics["mse"] <= 0.8 * metrics["mse_shuffled_baseline"], metrics
    assert metrics["temporal_score"] > 0.2, metrics  # predicted events sit at the right time
