"""What the whole chain does on held-out toy clips: right sound (class accuracy), right time (event-sync
error), right distribution (FD), for audio generated from four GPT-2 streams, each rendered with the
clip's label and without one (label ""):

    oracle      AudioMAE tokens of the clip's true audio: the decoder alone, the ceiling
    video       the mapper's tokens from the clip's video: the full pipeline
    shuffled    the mapper's tokens from another held-out clip's video (the previous one, in id order)
    zeros       zero tokens (AudioLDM-2's unconditional GPT-2 stream)

Timing control (``sync_guidance``, when the pipeline has a video envelope predictor and a latent envelope
head): the video tokens with the label, guided towards three envelopes, each at the same scale:

    guided          the envelope the predictor reads from the clip's own video: the full pipeline
    guided_shuffled the envelope predicted from another held-out clip's video (the previous one): what
                    guidance does when the envelope has nothing to do with the clip (the baseline)
    guided_true     the envelope of the clip's true audio: the ceiling of the guidance

and the predictor's own accuracy (``envelope``: MSE and Pearson correlation of the predicted z-scored
envelope against the true one, per clip, and the same for the shuffled video's envelope).

Without a label, only the tokens can say what to render: that is where the report shows whether the
mapper reaches the sound (``zeros`` without a label is the chance level). For ``shuffled`` the report
also gives the accuracy against the class of the clip whose video gave the tokens ("source class").

Two rows score no generation: "real" is the clips' true audio, "vocoder" the true audio's log-mel (as
AudioLDM-2 prepares audio for its VAE) turned back into sound by the decoder's vocoder alone: the
ceiling of everything the UNet and VAE could do.

One held-out clip is enough for every row but the two ``shuffled`` ones, which need another clip's
video: with one clip they are left out and the report's ``note`` says why; FD, which fits a Gaussian
to the clips, is None (n/a) there.

Class accuracy: the toy classifier (``evaluation.toy_classifier``, the `toy` PANNs preset) on the
first ``SCORED_SECONDS`` of each generation, against the clip's label. Event-sync error: mean |lag|
of the generated onsets against the clip's true events (``evaluation.toy_sync``). FD: Fréchet distance
between the toy classifier's embeddings of the generations and of the clips' true audio. Every
condition is rendered with the same seed per clip, by the pipeline's own sampling path
(``VideoToAudioPipeline.render_tokens``: row i of a batch seeded seed + i).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation import panns
from evaluation.metrics import frechet_distance
from evaluation.protocol import SCORED_SECONDS
from evaluation.toy_classifier import TOY_LABELS, load_toy_classifier
from evaluation.toy_sync import sync_offset
from extractors.envelope import audio_envelope
from extractors.frozen import FrozenExtractors
from extractors.video import read_clip
from mapper.decoders.audioldm2.envelope_guidance import DEFAULT_SCALE
from mapper.decoders.audioldm2.mel import MelConfig, log_mel
from mapper.decoders.audioldm2.reference import normalize_reference
from mapper.generation.sampling import SamplingConfig, sampling_config
from toy_world import read_world, window_event_times

CONDITIONS = ("oracle", "video", "shuffled", "zeros")
GUIDED = ("guided", "guided_shuffled", "guided_true")  # video tokens + label, guided towards an envelope
NEEDS_ANOTHER_CLIP = ("shuffled", "guided_shuffled")  # conditions made from another held-out clip's video
TOY_REPORT_FILE = "toy_report.json"  # where the toy recipe stores the report, beside the mapper
NO_LABEL = "_no_label"  # row name suffix: the same tokens rendered with the label ""


def row_names() -> list[str]:
    """Every generated row of the report, in print order: each condition with the label, then without."""
    return [*CONDITIONS, *(f"{name}{NO_LABEL}" for name in CONDITIONS)]


@dataclass
class HeldOutClips:
    ids: list[str]
    videos: list[Path]
    starts: list[float]
    labels: list[str]
    event_times: list[np.ndarray]  # seconds from each clip's start
    audio: np.ndarray  # (B, clip samples) the true audio of each window, as extraction reads it
    seconds: list[float] | None = None  # each clip's seconds of video in its window (<= the window's)


def held_out_clips(world_dir: str | Path, clip, split: str = "test", limit: int | None = None,
                   minimum: int = 2) -> HeldOutClips:
    """The `split` clips of the toy world in `world_dir`, at most `limit`, in id order; ValueError (one
    line) if fewer than `minimum`."""
    world = read_world(world_dir)
    specs = world.clips(split)[:limit]
    if len(specs) < minimum:
        raise ValueError(f"{world_dir}: {len(specs)} '{split}' clips; the report needs at least {minimum}")
    videos = [world.video_path(c["id"]) for c in specs]
    audio = np.stack([read_clip(v, clip, start=c["start"], with_audio=True).audio for v, c in zip(videos, specs)])
    return HeldOutClips([c["id"] for c in specs], videos, [float(c["start"]) for c in specs],
                        [c["label"] for c in specs], [window_event_times(c) for c in specs], audio,
                        [min(float(c["duration"]) - float(c["start"]), clip.seconds) for c in specs])


@torch.inference_mode()
def condition_tokens(pipeline, clips: HeldOutClips, features: list[dict] | None = None) -> dict[str, torch.Tensor]:
    """{condition: (B, N, D) GPT-2-stream tokens} for the held-out clips (``features``: their visual
    streams, when the caller has them)."""
    audiomae = FrozenExtractors.from_preset(pipeline.mapper.config.extractor_preset)
    oracle = audiomae.encode_audio(torch.from_numpy(clips.audio))  # (B, N, D)
    features = features or [pipeline.visual_features(v, s) for v, s in zip(clips.videos, clips.starts)]
    video = pipeline.map_features(features)
    return {"oracle": oracle, "video": video, "shuffled": video.roll(1, dims=0), "zeros": torch.zeros_like(video)}


def condition_envelopes(pipeline, clips: HeldOutClips, features: list[dict]) -> dict[str, np.ndarray]:
    """{guided row: (B, E) target envelope}: predicted from each clip's video, from the previous clip's, and
    the true audio's (``extractors.envelope``, as extraction stores it)."""
    clip = pipeline.clip
    predicted = pipeline.predict_envelopes(features)  # (B, E)
    true = audio_envelope(clips.audio, clip.envelope_frame_samples, clip.envelope_frames)
    return {"guided": predicted, "guided_shuffled": np.roll(predicted, 1, axis=0), "guided_true": true}


def envelope_accuracy(predicted: np.ndarray, true: np.ndarray) -> dict:
    """Mean per-clip MSE and Pearson correlation of envelopes (B, E) against the true ones."""
    p, t = predicted - predicted.mean(1, keepdims=True), true - true.mean(1, keepdims=True)
    corr = (p * t).sum(1) / np.sqrt((p ** 2).sum(1) * (t ** 2).sum(1)).clip(min=1e-12)
    return {"mse": float(((predicted - true) ** 2).mean()), "corr": float(corr.mean())}


@torch.inference_mode()
def vocode_true_audio(pipeline, clips: HeldOutClips) -> np.ndarray:
    """(B, clip samples): each clip's normalised true audio -> log-mel -> the decoder's vocoder."""
    mel_config = MelConfig.for_vocoder(pipeline.vocoder.config)
    out = np.zeros_like(clips.audio, dtype=np.float32)
    for i, audio in enumerate(clips.audio):
        mel = log_mel(normalize_reference(audio), mel_config)[None]  # (1, frames, mels)
        waveform = pipeline.vocoder(mel.to(pipeline.vocoder.device, pipeline.vocoder.dtype))[0].float().cpu().numpy()
        out[i, : min(len(waveform), out.shape[1])] = waveform[: out.shape[1]]
    return out


def real_embedding(clips: HeldOutClips, sample_rate: int, classifier) -> torch.Tensor:
    """The classifier's embedding of the clips' true audio (what every row's FD compares against)."""
    scored = round(SCORED_SECONDS * sample_rate)
    audio = torch.from_numpy(np.ascontiguousarray(clips.audio[:, :scored], np.float32))
    return panns.embed(classifier, audio)["embedding"]


def score(audio: np.ndarray, clips: HeldOutClips, sample_rate: int, classifier,
          source_labels: list[str] | None = None, real: torch.Tensor | None = None,
          subsets: dict[str, list[bool]] | None = None) -> dict:
    """Class accuracy (None when the clips' classes are not the toy classifier's), event-sync error and FD of
    generations (B, S) against the clips; with
    `source_labels`, also the accuracy against those (the classes the tokens came from). FD is None
    for a single clip (no covariance to fit). `real`: :func:`real_embedding`, when the caller has it already.
    `subsets`: {name: one bool per clip}; each adds ``class_accuracy_<name>`` and ``event_sync_error_s_<name>``,
    the same scores over the clips it marks (None for none; no FD: too few clips for a covariance)."""
    scored = round(SCORED_SECONDS * sample_rate)
    generated = panns.embed(classifier, torch.from_numpy(np.ascontiguousarray(audio[:, :scored])))
    real = real_embedding(clips, sample_rate, classifier) if real is None else real
    predicted = [TOY_LABELS[k] for k in generated["logits"].argmax(dim=1).tolist()]
    correct = np.array([p == t for p, t in zip(predicted, clips.labels)])  # (B,) per clip
    lags = np.array([abs(sync_offset(a, sample_rate, times)) for a, times in zip(audio, clips.event_times)])  # (B,) s
    known = set(clips.labels) <= set(TOY_LABELS)  # a world of other classes: the toy classifier cannot tell
    result = {
        "class_accuracy": float(correct.mean()) if known else None,
        "event_sync_error_s": float(np.nanmean(lags)),
        "fd": (frechet_distance(generated["embedding"].numpy(), real.numpy())
               if len(audio) > 1 else None),
    }
    for name, marked in (subsets or {}).items():
        if len(marked) != len(lags):
            raise ValueError(f"subset {name!r} marks {len(marked)} clips, there are {len(lags)}")
        chosen = np.asarray(marked, dtype=bool)  # (B,)
        result[f"class_accuracy_{name}"] = float(correct[chosen].mean()) if known and chosen.any() else None
        result[f"event_sync_error_s_{name}"] = float(np.nanmean(lags[chosen])) if chosen.any() else None
    if source_labels is not None:
        result["source_class_accuracy"] = (float(np.mean([p == t for p, t in zip(predicted, source_labels)]))
                                           if known else None)
    return result


def toy_report(pipeline, world_dir: str | Path, *, limit: int | None = None, sampling: SamplingConfig | None = None,
               seed: int = 0, batch: int = 8, sync_guidance: float | None = None) -> dict:
    """{row: {class_accuracy, event_sync_error_s, fd[, source_class_accuracy]}, "clips": n, "real": {...},
    "vocoder": {...}} on held-out toy clips, one row per `row_names()` ("real": the true audio; "vocoder":
    the true audio through the vocoder alone), and the guided rows (``GUIDED``) with "envelope" (the
    predictor's accuracy) and "sync_guidance" (the scale) when the pipeline can guide. ``sync_guidance``:
    that scale (default: the mapper folder's, or ``DEFAULT_SCALE`` where that is 0). With a single clip
    the shuffled rows are left out and "note" says so; ValueError (one line) if the world has no
    held-out clip."""
    sampling = sampling or sampling_config("fast")
    clips = held_out_clips(world_dir, pipeline.clip, limit=limit, minimum=1)
    single = len(clips.ids) < 2
    classifier = load_toy_classifier()
    features = [pipeline.visual_features(v, s) for v, s in zip(clips.videos, clips.starts)]
    tokens = condition_tokens(pipeline, clips, features)
    real = real_embedding(clips, pipeline.sample_rate, classifier)  # once, for every row
    report = {"clips": len(clips.ids), "real": score(clips.audio, clips, pipeline.sample_rate, classifier, real=real),
              "vocoder": score(vocode_true_audio(pipeline, clips), clips, pipeline.sample_rate, classifier, real=real)}
    sources = {"shuffled": clips.labels[-1:] + clips.labels[:-1]}  # video.roll(1): clip i has clip i-1's tokens
    if single:
        skipped = ", ".join(f"{name}, {name}{NO_LABEL}" for name in NEEDS_ANOTHER_CLIP)
        report["note"] = (f"{skipped} skipped: 1 held-out clip, and a shuffled video is another clip's "
                          "(they need at least 2)")
    for name in CONDITIONS:
        if single and name in NEEDS_ANOTHER_CLIP:
            continue
        for suffix, labels in (("", clips.labels), (NO_LABEL, [""] * len(clips.ids))):
            audio = np.concatenate([
                pipeline.render_tokens(tokens[name][i:i + batch], labels[i:i + batch], sampling, seed + i)
                for i in range(0, len(clips.ids), batch)])
            report[name + suffix] = score(audio, clips, pipeline.sample_rate, classifier, sources.get(name), real)
    if pipeline.missing_for_sync_guidance() is None:
        scale = sync_guidance if sync_guidance is not None else (pipeline.generation_defaults.sync_guidance
                                                                  or DEFAULT_SCALE)
        envelopes = condition_envelopes(pipeline, clips, features)
        report["sync_guidance"] = scale
        report["envelope"] = envelope_accuracy(envelopes["guided"], envelopes["guided_true"])
        if not single:
            shuffled = envelope_accuracy(envelopes["guided_shuffled"], envelopes["guided_true"])
            report["envelope"].update({f"shuffled_{key}": value for key, value in shuffled.items()})
        for name in GUIDED:
            if single and name in NEEDS_ANOTHER_CLIP:
                continue
            audio = np.concatenate([
                pipeline.render_tokens(tokens["video"][i:i + batch], clips.labels[i:i + batch], sampling, seed + i,
                                       envelope=envelopes[name][i:i + batch], sync_guidance=scale)
                for i in range(0, len(clips.ids), batch)])
            report[name] = score(audio, clips, pipeline.sample_rate, classifier, None, real)
    return report


def format_toy_report(report: dict) -> str:
    """The report as a small table, one row per condition and label mode (those it has), then its note."""
    lines = [f"held-out toy clips: {report['clips']}",
             f"{'audio':<15} {'label':<6} {'class acc':>9} {'source acc':>10} {'sync err (s)':>12} {'FD':>9}"]
    rows = [("real", "real", ""), ("vocoder", "vocoder", "")]
    rows += [(name, name.removesuffix(NO_LABEL), "no" if name.endswith(NO_LABEL) else "yes") for name in row_names()]
    rows += [(name, name, "yes") for name in GUIDED]
    for key, audio, label in rows:
        if key not in report:
            continue  # a row this many clips cannot give (the note says which)
        row = report[key]
        source = f"{row['source_class_accuracy']:>10.2f}" if row.get("source_class_accuracy") is not None else f"{'':>10}"
        accuracy = f"{row['class_accuracy']:>9.2f}" if row["class_accuracy"] is not None else f"{'n/a':>9}"
        fd = f"{row['fd']:>9.2f}" if row["fd"] is not None else f"{'n/a':>9}"
        lines.append(f"{audio:<15} {label:<6} {accuracy} {source} "
                     f"{row['event_sync_error_s']:>12.3f} {fd}")
    if "envelope" in report:
        envelope = report["envelope"]
        shuffled = (f"; shuffled video's: MSE {envelope['shuffled_mse']:.3f}, corr {envelope['shuffled_corr']:.2f}"
                    if "shuffled_mse" in envelope else "")
        lines.append(f"guided rows: video tokens + label, sync guidance {report['sync_guidance']:g}; envelope "
                     f"predicted from video: MSE {envelope['mse']:.3f}, corr {envelope['corr']:.2f}{shuffled}")
    if report.get("note"):
        lines.append(report["note"])
    return "\n".join(lines)
