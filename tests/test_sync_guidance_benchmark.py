"""The toy benchmarks over several sampling seeds: the offsets they accept (benchmarks.common.seed_offsets), the
mean benchmarks.sync_guidance reports and its split by clip length (evaluation.toy_report.score's subsets)."""
import numpy as np
import pytest

from benchmarks import sampling
from benchmarks import sync_guidance as bench
from benchmarks.common import seed_offsets
from evaluation.toy_classifier import load_toy_classifier
from evaluation.toy_report import HeldOutClips, score
from extractors.clip import ClipConfig
from toy_world import clip_window_audio, plan_world


def test_seed_offsets_are_distinct_integers_at_least_zero(capsys):
    assert seed_offsets("0") == [0] and seed_offsets("0,100,200") == [0, 100, 200]
    for bad in ("1,1", "-1", "0,x", ""):
        # refused by either benchmark's command line, before any model loads
        for main, flag in ((bench.main, "--seed-offset"), (sampling.main, "--offsets")):
            with pytest.raises(SystemExit) as stop:
                main(["--seed-check", flag, bad] if flag == "--offsets" else [flag, bad])
            assert stop.value.code == 2
            assert f"{flag}: expected distinct integers >= 0" in capsys.readouterr().err


def test_the_mean_over_seed_offsets_is_per_row_and_metric_and_keeps_each_offset():
    per_seed = {
        0: {"unguided": {"class_accuracy": 0.9, "event_sync_error_s": 0.5, "fd": 6.0},
            "video 0.045:0.3": {"class_accuracy": 0.8, "event_sync_error_s": 0.2, "fd": 9.0}},
        100: {"unguided": {"class_accuracy": 1.0, "event_sync_error_s": 0.7, "fd": 8.0},
              "video 0.045:0.3": {"class_accuracy": 0.9, "event_sync_error_s": 0.4, "fd": 7.0}},
    }
    rows = bench.mean_rows(per_seed)
    assert rows["unguided"] == pytest.approx({"class_accuracy": 0.95, "event_sync_error_s": 0.6, "fd": 7.0})
    assert rows["video 0.045:0.3"] == pytest.approx({"class_accuracy": 0.85, "event_sync_error_s": 0.3, "fd": 8.0})
    # a world the toy classifier does not know has no class accuracy at any seed: it stays None
    per_seed[0]["unguided"]["class_accuracy"] = per_seed[100]["unguided"]["class_accuracy"] = None
    assert bench.mean_rows(per_seed)["unguided"]["class_accuracy"] is None
    saved = bench._seed_rows(per_seed, rows)
    assert saved["seed_offsets"] == [0, 100] and saved["rows"] is rows
    assert saved["per_seed_offset"]["100"]["video 0.045:0.3"]["fd"] == 7.0


def test_scores_over_subsets_of_clips_are_those_of_the_clips_alone():
    """The benchmark's split by clip length: a subset's class accuracy and event-sync error are what scoring
    its clips alone gives; an empty subset has none; a mask of the wrong length is refused, naming it."""
    clip = ClipConfig()
    specs = [c for c in plan_world(12, 5, clip)["clips"] if c["duration"] >= clip.seconds][:4]
    audio = np.stack([clip_window_audio(c, clip) for c in specs]).astype(np.float32)
    events = [np.asarray(c["events"]["times"]) - c["start"] for c in specs]
    labels = [c["label"] for c in specs]
    clips = HeldOutClips([c["id"] for c in specs], [], [0.0] * 4, labels, events, audio)
    rendered = audio.copy()
    rendered[0] = np.roll(audio[0], round(0.3 * clip.sample_rate))  # its sound 0.3 s late
    rendered[3] = audio[1]  # another clip's sound: its class and events are wrong
    classifier = load_toy_classifier()
    marked = [True, False, False, True]
    result = score(rendered, clips, clip.sample_rate, classifier, subsets={"odd": marked, "none": [False] * 4})
    alone = score(rendered[[0, 3]], HeldOutClips([clips.ids[0], clips.ids[3]], [], [0.0] * 2, [labels[0], labels[3]],
                                                 [events[0], events[3]], audio[[0, 3]]), clip.sample_rate, classifier)
    assert result["class_accuracy_odd"] == alone["class_accuracy"]
    assert result["event_sync_error_s_odd"] == pytest.approx(alone["event_sync_error_s"])
    assert result["event_sync_error_s_odd"] >= 0.15  # clip 0 is 0.3 s off: the subset holds the late clip
    assert result["class_accuracy_none"] is None and result["event_sync_error_s_none"] is None
    with pytest.raises(ValueError, match="subset 'odd' marks 3 clips, there are 4"):
        score(rendered, clips, clip.sample_rate, classifier, subsets={"odd": marked[:3]})


def test_the_length_table_has_a_line_per_row_and_n_a_where_a_world_has_no_class():
    rows = {"unguided": {"class_accuracy_whole": 0.93, "event_sync_error_s_whole": 0.5184,
                         "class_accuracy_short": None, "event_sync_error_s_short": 0.534}}
    lines = bench._subset_table(rows, ["whole", "short"]).splitlines()
    assert lines[0] == "| row | class acc, whole | sync err, whole (s) | class acc, short | sync err, short (s) |"
    assert len(lines) == 3 and lines[2] == "| unguided | 0.93 | 0.518 | n/a | 0.534 |"


def test_a_named_head_reaches_the_pipeline_the_mapper_loads(monkeypatch, tmp_path):
    """--head with --mapper: the pipeline is loaded with that head (a mapper whose decoder is a folder names none);
    without --head, the decoder's own (None)."""
    import mapper.generation.loading as loading

    seen = []

    def load_pipeline(**kwargs):
        seen.append(kwargs)
        raise SystemExit("stop before rendering")

    monkeypatch.setattr(loading, "load_pipeline", load_pipeline)
    for extra, head in ((["--head", str(tmp_path)], str(tmp_path)), ([], None)):
        with pytest.raises(SystemExit, match="stop before rendering"):
            bench.main(["--mapper", str(tmp_path), "--world", str(tmp_path), *extra])
        assert seen[-1] == {"mapper": tmp_path, "envelope_head": head}
