"""`MapperConfig`: everything needed to rebuild a trained mapper, saved as config.json.

Besides the GPT-2 sizes and the ablation switches it records which extractor preset produced its
inputs and which AudioLDM-2 its outputs condition, so `load_pipeline()` can pick the matching
frozen models without being told. The feature dimensions are copied from the preset when the
config is made (`MapperConfig.from_preset`), because a saved mapper must be usable on its own.
"""
from __future__ import annotations

from transformers import PretrainedConfig

ENCODERS = ("both", "cavp", "timechat")
FUSIONS = ("concat_proj", "add", "time_cat")
LOSSES = ("mse", "l1")
MAPPER_TYPES = ("autoregressive", "diffusion")


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not one of {', '.join(choices)}")


class MapperConfig(PretrainedConfig):
    model_type = "mfm_mapper"

    def __init__(
        self,
        mapper_type: str = "autoregressive",  # paper: autoregressive; "diffusion" = Diff-Mapper ablation
        encoders: str = "both",  # which visual features feed the mapper (paper ablation)
        fusion: str = "concat_proj",  # how CAVP and TimeChat are combined (paper ablation)
        loss: str = "mse",  # paper: MSE; AudioLDM-2's own GPT-2 was trained with L1
        n_layer: int = 12,  # GPT-2 depth (paper: AudioLDM-2's GPT-2, 12 x 768)
        n_head: int = 12,
        dropout: float = 0.1,  # GPT-2's default residual/attention/embedding dropout
        n_positions: int = 1024,  # GPT-2's position table; only num_frames + tokens are used
        cavp_dim: int = 512,
        timechat_dim: int = 768,
        num_frames: int = 40,  # CAVP steps = clip frames (fps x seconds of the preset)
        timechat_spans: list[list[int]] | None = None,  # [start, end) frames of each window
        timechat_queries: int = 32,  # video Q-Former tokens per window
        num_audio_tokens: int = 8,  # pooled AudioMAE tokens (the GPT-2 stream of AudioLDM-2)
        audio_token_dim: int = 768,  # = GPT-2 width: outputs are fed back as inputs
        extractor_preset: str = "paper",
        extractor_fingerprint: str = "",
        audioldm2: str = "cvssp/audioldm2",
        diffusion_train_timesteps: int = 1000,  # Diff-Mapper: noise levels seen in training
        diffusion_inference_steps: int = 50,  # Diff-Mapper: DDIM denoising steps at inference
        **kwargs,
    ):
        check_choice("mapper_type", mapper_type, MAPPER_TYPES)
        check_choice("encoders", encoders, ENCODERS)
        check_choice("fusion", fusion, FUSIONS)
        check_choice("loss", loss, LOSSES)
        if fusion != "concat_proj" and encoders != "both":
            # 'add' and 'time_cat' combine two encoders; with one encoder there is nothing to fuse.
            raise ValueError(f"fusion={fusion!r} needs encoders='both' (got encoders={encoders!r})")
        self.mapper_type, self.encoders, self.fusion, self.loss = mapper_type, encoders, fusion, loss
        self.n_layer, self.n_head, self.dropout, self.n_positions = n_layer, n_head, dropout, n_positions
        self.cavp_dim, self.timechat_dim, self.num_frames = cavp_dim, timechat_dim, num_frames
        self.timechat_spans = timechat_spans if timechat_spans is not None else [[0, 32], [32, 40]]
        self.timechat_queries = timechat_queries
        self.num_audio_tokens, self.audio_token_dim = num_audio_tokens, audio_token_dim
        self.extractor_preset, self.extractor_fingerprint = extractor_preset, extractor_fingerprint
        self.audioldm2 = audioldm2
        self.diffusion_train_timesteps = diffusion_train_timesteps
        self.diffusion_inference_steps = diffusion_inference_steps
        super().__init__(**kwargs)

    @property
    def timechat_tokens(self) -> int:
        return len(self.timechat_spans) * self.timechat_queries

    @property
    def prefix_length(self) -> int:
        """Number of fused visual tokens in front of the audio tokens."""
        if self.fusion == "time_cat":
            return self.num_frames + self.timechat_tokens
        return self.num_frames

    @classmethod
    def from_preset(cls, preset, **kwargs) -> "MapperConfig":
        """Copy feature shapes from an extractor preset (name or `ExtractorPreset`)."""
        from extractors.presets import get_preset

        preset = get_preset(preset) if isinstance(preset, str) else preset
        dims = preset.dims
        return cls(
            cavp_dim=dims.cavp_dim,
            timechat_dim=dims.timechat_dim,
            num_frames=dims.num_frames,
            timechat_spans=[list(span) for span in preset.timechat.window_spans(dims.num_frames)],
            timechat_queries=dims.timechat_tokens // dims.num_windows,
            num_audio_tokens=dims.num_audio_tokens,
            audio_token_dim=dims.audio_token_dim,
            extractor_preset=preset.name,
            extractor_fingerprint=preset.fingerprint(),
            audioldm2=preset.audioldm2,
            **kwargs,
        )
