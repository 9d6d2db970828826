"""What a mapper is: the choices (``MapperOptions``) and everything to rebuild it (``MapperConfig``).

``MapperOptions`` owns the architecture and the paper's ablation switches, with their defaults, in
one place: the Lightning module takes it as ``model.mapper`` in the training YAML, and
``MapperConfig`` stores its fields flat in config.json. Besides them the config records the shapes
of the named visual feature streams it reads and of the tokens it predicts (copied from the extractor
preset by ``MapperConfig.from_preset``, because a saved mapper must be usable on its own; left out,
they are the paper preset's), which preset produced them, and which AudioLDM-2 its outputs
condition, so ``load_pipeline()`` can pick the matching frozen models without being told.

A config.json is untrusted input: every size in it is an integer (never a bool, a float or a string)
within ``LIMITS``, checked here when the config is made, before any model is built from it (each
bound far above the paper's figure, and small enough that the model a config describes is built in
about a second on the meta device, and that what is derived from the config but never saved — the
alignment matrices, the sampling schedules, the generation loops — stays small).
"""
from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass

from transformers import PretrainedConfig

from extractors.encoders import StreamSpec
from mapper.arguments import ArgumentError, check_choice, check_int, check_number, shown

ALL_STREAMS = "all"
FUSIONS = ("concat_proj", "add", "time_cat")
LOSSES = ("mse", "l1")
MAPPER_TYPES = ("autoregressive", "diffusion")

# The largest size a mapper config may ask for (the paper's in brackets): a GPT-2 deeper than 128 blocks
# (12; GPT-2 XL has 48) or wider than 16384 (768: AudioMAE's width; GPT-2 XL 1600), a position table over
# 65536 (1024), a clip of over 2048 frames (40: 10 s at 4 fps), over 1024 predicted tokens (8), a DDPM
# schedule of over 100000 noise levels (1000) or over 1000 denoising steps at inference (50).
LIMITS = {
    "n_layer": 128,
    "n_head": 256,
    "n_positions": 65536,
    "diffusion_train_timesteps": 100_000,
    "diffusion_inference_steps": 1000,
    "num_frames": 2048,
    "num_audio_tokens": 1024,
    "audio_token_dim": 16384,
}
# Each visual stream: at most 16 streams, of at most 16384 channels (CAVP 512, TimeChat 768) and
# 4096 tokens (windows x queries; TimeChat 2 x 32), so an alignment matrix (frames x tokens) stays
# under 32 MiB.
MAX_STREAMS, MAX_STREAM_DIM, MAX_STREAM_TOKENS = 16, 16384, 4096
STREAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a module and buffer name (align_<name>)
MAX_LABELS = 1024  # PretrainedConfig's num_labels / id2label (unused here; it builds a dict of them)


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
            check_int(name, getattr(self, name), 1, LIMITS[name])
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
        for name, value in (("num_frames", num_frames), ("num_audio_tokens", num_audio_tokens),
                            ("audio_token_dim", audio_token_dim)):
            if value is not None:
                check_int(name, value, 1, LIMITS[name])
        _check_generic_sizes(kwargs)
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
        check_streams(streams, num_frames)
        if stream_order is not None and not (isinstance(stream_order, (list, tuple))
                                             and all(isinstance(name, str) for name in stream_order)):
            raise ArgumentError("stream_order", f" must be a list of stream names, got {shown(stream_order)}")
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


def check_streams(streams, num_frames: int) -> None:
    """``streams`` is {name: {"dim", "spans", "queries"}} within the bounds, every window [start, end) of
    whole frames inside the clip; a bad entry is named as ``streams.<name>.<field>``."""
    if not (isinstance(streams, dict) and 1 <= len(streams) <= MAX_STREAMS):
        raise ArgumentError("streams", f" must map 1 to {MAX_STREAMS} stream names to their shapes, "
                            f"got {shown(streams)}")
    for name, spec in streams.items():
        if not (isinstance(name, str) and STREAM_NAME.fullmatch(name)):
            raise ArgumentError("streams", f" names must be identifiers of at most 64 characters, got {shown(name)}")
        where = f"streams.{name}"
        if not (isinstance(spec, dict) and {"dim", "spans", "queries"} <= set(spec)):
            raise ArgumentError(where, f" must be a dict of dim, spans and queries, got {shown(spec)}")
        check_int(f"{where}.dim", spec["dim"], 1, MAX_STREAM_DIM)
        queries = check_int(f"{where}.queries", spec["queries"], 1, MAX_STREAM_TOKENS)
        spans = spec["spans"]
        ok = isinstance(spans, (list, tuple)) and 1 <= len(spans) <= num_frames and all(
            isinstance(span, (list, tuple)) and len(span) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in span)
            and 0 <= span[0] < span[1] <= num_frames
            for span in spans)  # fmt: skip
        if not ok:
            raise ArgumentError(f"{where}.spans", f" must be a list of 1 to {num_frames} [start, end) frame windows "
                                f"with 0 <= start < end <= num_frames={num_frames}, got {shown(spans)}")
        if len(spans) * queries > MAX_STREAM_TOKENS:
            tokens = len(spans) * queries
            raise ArgumentError(f"{where}.spans", f": {len(spans)} windows x {queries} queries = {tokens} tokens, "
                                f"at most {MAX_STREAM_TOKENS} allowed")


def _check_generic_sizes(kwargs: dict) -> None:
    """The sizes ``PretrainedConfig`` itself reads: ``num_labels`` (it builds a dict of that many labels)."""
    if "num_labels" in kwargs:
        check_int("num_labels", kwargs["num_labels"], 0, MAX_LABELS)
    for name in ("id2label", "label2id"):
        value = kwargs.get(name)
        if value is not None and not (isinstance(value, dict) and len(value) <= MAX_LABELS):
            raise ArgumentError(name, f" must be a dict of at most {MAX_LABELS} labels, got {shown(value)}")
