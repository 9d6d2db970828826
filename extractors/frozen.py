"""The three frozen foundation models behind one module: video -> (CAVP, TimeChat), audio -> AudioMAE.

Features are computed once and cached at training time, and recomputed for new videos at generation
time; both must come from *identical* weights. Released checkpoints guarantee that for the paper
preset; for random (tiny) presets every model is built right after ``torch.manual_seed(preset.seed)``
inside a forked RNG, so any process builds the same weights without disturbing the caller's RNG.

Numerics follow the originals (``tests/test_fidelity.py`` checks each model against fixtures made by
running them): CAVP and AudioMAE in fp32; TimeChat's visual side in ``preset.timechat.precision``
(the paper preset: fp16 mixed precision exactly as TimeChat; the features come back as float32).
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from extractors.audiomae import AudioMAEEncoder, convert_audiomae_checkpoint
from extractors.cavp import CAVP_CHECKPOINT, CAVPEncoder, read_cavp_checkpoint
from extractors.audiomae import waveform_to_audiomae_input
from extractors.presets import ExtractorPreset, FeatureDims, get_preset
from extractors.timechat import BUILTIN_TOKENIZER, TimeChatVisual, build_tokenizer, load_timechat_weights

# Accepted AudioMAE weight files in weights_dir, first found wins. Either holds the AS-2M pre-trained
# AudioMAE encoder that AudioLDM-2 uses: the MAE ``pretrained.pth`` (facebookresearch/AudioMAE), its
# timm port (gaunernst/vit_base_patch16_1024_128.audiomae_as2m), or an AudioLDM-2 training checkpoint.
AUDIOMAE_FILES = ("audiomae.safetensors", "audiomae.pth")


class FrozenExtractors(nn.Module):
    """CAVP + TimeChat visual side + AudioMAE, eval mode, no gradients."""

    def __init__(self, preset: ExtractorPreset):
        super().__init__()
        self.preset = preset
        tokenizer = _local_tokenizer(preset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(preset.seed)
            self.cavp = CAVPEncoder(preset.cavp)
            torch.manual_seed(preset.seed)
            self.timechat = TimeChatVisual(preset.timechat, tokenizer=tokenizer)
            torch.manual_seed(preset.seed)
            self.audiomae = AudioMAEEncoder(preset.audiomae)
        if preset.weights_dir is not None:
            self._load_released(preset.weights_dir)
        self.eval().requires_grad_(False)

    @classmethod
    def from_preset(cls, preset: ExtractorPreset | str) -> "FrozenExtractors":
        return cls(get_preset(preset) if isinstance(preset, str) else preset)

    def _load_released(self, weights_dir: str) -> None:
        self.cavp.load_state_dict(read_cavp_checkpoint(os.path.join(weights_dir, CAVP_CHECKPOINT), self.preset.cavp))
        load_timechat_weights(self.timechat, weights_dir)
        paths = [os.path.join(weights_dir, name) for name in AUDIOMAE_FILES]
        path = next((p for p in paths if os.path.isfile(p)), None)
        if path is None:
            raise FileNotFoundError(f"AudioMAE weights not found: expected {' or '.join(paths)} (the AS-2M "
                                    "pre-trained AudioMAE encoder, e.g. facebookresearch/AudioMAE pretrained.pth "
                                    "or the timm port gaunernst/vit_base_patch16_1024_128.audiomae_as2m)")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            raw = load_file(path)
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        self.audiomae.load_state_dict(convert_audiomae_checkpoint(raw, self.preset.audiomae), strict=True)

    # ------------------------------------------------------------------ derived sizes
    @property
    def dims(self) -> FeatureDims:
        return self.preset.dims

    @property
    def cavp_dim(self) -> int:
        return self.dims.cavp_dim

    @property
    def timechat_dim(self) -> int:
        return self.dims.timechat_dim

    @property
    def num_windows(self) -> int:
        return self.dims.num_windows

    @property
    def timechat_tokens(self) -> int:
        return self.dims.timechat_tokens

    @property
    def audio_token_dim(self) -> int:
        return self.dims.audio_token_dim

    @property
    def num_audio_tokens(self) -> int:
        return self.dims.num_audio_tokens

    @property
    def device(self) -> torch.device:
        return self.cavp.video_project_head.weight.device

    # ------------------------------------------------------------------ encoding
    @torch.inference_mode()
    def encode_video(self, frames_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, H, W, 3) uint8 frames -> dict of ``cavp`` (B, T, Dc), ``timechat`` (B, W*Q, Dt) and
        ``timechat_spans`` (W, 2): the [start, end) frames of each TimeChat window.

        T must be the preset's frame count (clip seconds x fps); frames are resized by each model.
        """
        d = self.dims
        b, t = frames_uint8.shape[:2]
        if t != d.num_frames:
            raise ValueError(f"expected {d.num_frames} frames per clip ({self.preset.clip.seconds} s at "
                             f"{self.preset.clip.fps} fps), got {t}")
        frames = frames_uint8.to(self.device)
        cavp = self.cavp(self.cavp.preprocess(frames)).float()
        timechat, spans = self.timechat(self.timechat.preprocess(frames), fps=self.preset.clip.fps)
        timechat = timechat.float()
        assert cavp.shape == (b, t, d.cavp_dim), cavp.shape
        assert timechat.shape == (b, d.timechat_tokens, d.timechat_dim), timechat.shape
        assert spans.shape == (d.num_windows, 2), spans.shape
        return {"cavp": cavp, "timechat": timechat, "timechat_spans": spans}

    @torch.inference_mode()
    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, num_samples) float32 mono at the clip sample rate -> AudioMAE targets (B, num_audio_tokens, Da)."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a (B, num_samples) waveform, got {tuple(waveform.shape)}")
        fbank = waveform_to_audiomae_input(waveform.to(self.device), self.preset.audiomae)  # (B, 1024, 128)
        tokens = self.audiomae(fbank).float()
        d = self.dims
        assert tokens.shape == (waveform.shape[0], d.num_audio_tokens, d.audio_token_dim), tokens.shape
        return tokens


def _local_tokenizer(preset: ExtractorPreset):
    """With released weights the BERT tokenizer is read from ``weights_dir/<tokenizer>`` (offline)."""
    name = preset.timechat.tokenizer
    if name == BUILTIN_TOKENIZER or preset.weights_dir is None:
        return None  # TimeChatVisual builds it lazily from the config
    path = name if os.path.isabs(name) else os.path.join(preset.weights_dir, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"BERT tokenizer folder not found: {path} (save the Hugging Face "
                                f"'bert-base-uncased' tokenizer there with tokenizer.save_pretrained)")
    return build_tokenizer(path)
