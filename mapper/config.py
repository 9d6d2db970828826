"""What a mapper is: the choices (``MapperOptions``) and everything to rebuild it (``MapperConfig``).

``MapperOptions`` owns the architecture and the paper's ablation switches, with their defaults, in
one place: the Lightning module takes it as ``model.mapper`` in the training YAML, and
``MapperConfig`` stores its fields flat in config.json. Besides them the config records the shapes
of the named visual feature streams it reads and of the tokens it predicts (copied from the extractor
preset by ``MapperConfig.from_preset``, because a saved mapper must be usable on its own; left out,
they are the paper preset's), which preset produced them, and which AudioLDM-2 its outputs
condition, so ``load_pipeline()`` can pick the matching frozen models without being told.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transformers import PretrainedConfig

from extractors.encoders import StreamSpec
from mapper.arguments import check_choice, check_int, check_number

ALL_STREAMS = "all"
FUSIONS = ("concat_proj", "add", "time_cat")
LOSSES = ("mse", "l1")
MAPPER_TYPES = ("autoregressive", "diffusion")


@dataclass(frozen=True)
class MapperOptions:
    mapper_type: str = "autoregressive"  # paper: autoregressive; "diffusion" = Diff-Mapper ablation
    encoders: str | list[str] = ALL_STREAMS  # visual streams that feed the mapper: "all", a name, or names
    fusion: str = "concat_proj"  # how several streams are combined (paper ablation)
    loss: str = "mse"  # paper: MSE; AudioLDM-2's own GPT-2 was trained with L1
    n_layer: int = 12  # GPT-2 depth (paper: AudioLDM-2's GPT-2, 12 x 768)
    n_head: int = 12
    dropout: float = 0.1  # GPT-2's default residual/attention/embedding dropout
    n_positions: int = 1024  # GPT-2's position table; only the prefix + audio tokens are used
    diffusion_train_timesteps: int = 1000  # Diff-Mapper: noise levels seen in training
    diffusion_inference_steps: int = 50  # Diff-Mapper: DDIM denoising steps at inference

    def __post_init__(self):
        check_choice("mapper_type", self.mapper_type, MAPPER_TYPES)
        check_choice("fusion", self.fusion, FUSIONS)
        check_choice("loss", self.loss, LOSSES)
        for name in ("n_layer", "n_head", "n_positions", "diffusion_train_timesteps", "diffusion_inference_steps"):
            check_int(name, getattr(self, name), 1)
        check_number("dropout", self.dropout, low=0.0, below=1.0)
        if self.diffusion_inference_steps > self.diffusion_train_timesteps:
            raise ValueError(f"diffusion_inference_steps={self.diffusion_inference_steps} must be <= "
                             f"diffusion_train_timesteps={self.diffusion_train_timesteps}")
        if not (isinstance(self.encoders, str) or (isinstance(self.encoders, (list, tuple)) and self.encoders
                                                   and all(isinstance(e, str) for e in self.encoders))):
            raise ValueError(f"encoders={self.encoders!r} must be 'all', a stream name or a list of names")
        if self.fusion != "concat_proj" and self.encoders != ALL_STREAMS and len(self.encoder_names) < 2:
            # 'add' and 'time_cat' combine streams; with one there is nothing to fuse.
            raise ValueError(f"fusion={self.fusion!r} combines several streams; encoders={self.encoders!r} selects one")

    @property
    def encoder_names(self) -> list[str] | None:
        """The selected stream names; None for all of them."""
        if self.encoders == ALL_STREAMS:
            return None
        return [self.encoders] if isinstance(self.encoders, str) else list(self.encoders)


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(MapperOptions))


class MapperConfig(PretrainedConfig):
    model_type = "mfm_mapper"

    def __init__(
        self,
        streams: dict[str, dict] | None = None,  # stream name -> StreamSpec.to_dict()
        stream_order: list[str] | None = None,  # fusion order (config.json sorts dict keys; a list keeps it)
        num_frames: int | None = None,  # frames of the clip window (fps x seconds of the preset)
        num_audio_tokens: int | None = None,  # pooled AudioMAE tokens (the GPT-2 stream of AudioLDM-2)
        audio_token_dim: int | None = None,  # = GPT-2 width: outputs are fed back as inputs
        extractor_preset: str = "paper",
        extractor_fingerprint: str = "",
        audioldm2: str = "cvssp/audioldm2",
        **kwargs,
    ):
        options = MapperOptions(**{name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs})
        for name in OPTION_NAMES:
            setattr(self, name, getattr(options, name))
        if None in (streams, num_frames, num_audio_tokens, audio_token_dim):
            # A shape not given is the paper preset's, read from its owners: the clip timing (ClipConfig:
            # the frames), the encoders (the streams) and AudioMAE (the token count and width).
            from extractors.presets import get_preset

            paper = get_preset("paper")
            num_frames = paper.clip.num_frames if num_frames is None else num_frames
            num_audio_tokens = paper.dims.num_audio_tokens if num_audio_tokens is None else num_audio_tokens
            audio_token_dim = paper.dims.audio_token_dim if audio_token_dim is None else audio_token_dim
            if streams is None:  # the paper's encoders at this clip length
                streams = {name: config.stream(num_frames).to_dict() for name, config in paper.visual.items()}
        self.streams = streams
        self.stream_order = list(stream_order) if stream_order is not None else list(streams)
        if sorted(self.stream_order) != sorted(self.streams):
            raise ValueError(f"stream_order {self.stream_order} does not name the streams {sorted(self.streams)}")
        self.num_frames, self.num_audio_tokens, self.audio_token_dim = num_frames, num_audio_tokens, audio_token_dim
        self.extractor_preset, self.extractor_fingerprint = extractor_preset, extractor_fingerprint
        self.audioldm2 = audioldm2
        if audio_token_dim % options.n_head:
            raise ValueError(f"n_head={options.n_head} must divide the token width {audio_token_dim}")
        unknown = [name for name in (options.encoder_names or []) if name not in self.streams]
        if unknown:
            raise ValueError(f"encoders {unknown} are not among the streams {list(self.streams)}")
        if options.fusion != "concat_proj" and len(self.selected_streams) < 2:
            raise ValueError(f"fusion={options.fusion!r} combines several streams; only {list(self.selected_streams)} selected")
        for name, spec in self.selected_streams.items():
            if any(end > num_frames for _, end in spec.spans):
                raise ValueError(f"stream {name!r} spans {spec.spans} reach past the clip's {num_frames} frames")
        super().__init__(**kwargs)

    @property
    def options(self) -> MapperOptions:
        return MapperOptions(**{name: getattr(self, name) for name in OPTION_NAMES})

    @property
    def selected_streams(self) -> dict[str, StreamSpec]:
        """The streams that feed the mapper, in fusion order."""
        names = self.options.encoder_names or self.stream_order
        return {name: StreamSpec.from_dict(self.streams[name]) for name in self.stream_order if name in names}

    @property
    def prefix_length(self) -> int:
        """Number of fused visual tokens in front of the audio tokens."""
        if self.fusion == "time_cat":
            return sum(spec.num_tokens for spec in self.selected_streams.values())
        return self.num_frames

    @classmethod
    def from_preset(cls, preset, options: MapperOptions | None = None, audioldm2: str | None = None,
                    **kwargs) -> "MapperConfig":
        """A mapper for the features of an extractor preset (name or ``ExtractorPreset``), with
        ``options`` and/or single option keywords (``n_layer=2``); ``audioldm2``: the decoder its tokens
        are for, when not the preset's."""
        from extractors.presets import get_preset

        preset = get_preset(preset) if isinstance(preset, str) else preset
        dims = preset.dims
        return cls(
            streams={name: spec.to_dict() for name, spec in dims.streams.items()},
            stream_order=list(dims.streams),
            num_frames=dims.num_frames,
            num_audio_tokens=dims.num_audio_tokens,
            audio_token_dim=dims.audio_token_dim,
            extractor_preset=preset.name,
            extractor_fingerprint=preset.fingerprint(),
            audioldm2=audioldm2 or preset.audioldm2,
            **{**dataclasses.asdict(options or MapperOptions()), **kwargs},  # single options override `options`
        )
