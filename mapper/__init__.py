"""MFM-Mapper: video-to-audio generation with frozen visual foundation models, a GPT-2 mapper
and AudioLDM-2.

    import mapper
    result = mapper.generate("clip.mp4", "dog barking")   # uses the last trained mapper
    result.audio, result.sample_rate                        # float32 mono, 16000; any video length
    mapper.generate("clip.mp4", "dog barking", preset="fast")            # Euler, 25 steps
    mapper.generate("clip.mp4", "rain", reference_audio="rain.wav")      # continue a reference sound

    pipe = mapper.load_pipeline(mapper="runs/toy/mapper")  # or name one explicitly (a diffusers pipeline)
"""
from __future__ import annotations

from mapper.config import MapperConfig
from mapper.diffusion_mapper import DiffusionMapperModel
from mapper.loading import build_mapper, load_mapper
from mapper.model import MapperModel

__all__ = [
    "DiffusionMapperModel",
    "GeneratedAudio",
    "MapperConfig",
    "MapperModel",
    "VideoToAudioPipeline",
    "build_mapper",
    "generate",
    "load_mapper",
    "load_pipeline",
]

# Generation's types come from mapper.generation, imported on first use: `import mapper` for
# training does not load the pipeline.
_GENERATION_EXPORTS = ("GeneratedAudio", "VideoToAudioPipeline")
_default_pipelines: dict = {}


def __getattr__(name: str):
    if name in _GENERATION_EXPORTS:
        import mapper.generation

        return getattr(mapper.generation, name)
    raise AttributeError(f"module 'mapper' has no attribute {name!r}")


def load_pipeline(*args, **kwargs):
    """`mapper.generation.load_pipeline`: mapper (or saved pipeline) folder, AudioLDM-2 ("tiny", a
    local diffusers folder, or a hub id), extractor preset, device, dtype -> VideoToAudioPipeline."""
    from mapper.generation.loading import load_pipeline as _load

    return _load(*args, **kwargs)


def generate(video, label: str | None = None, **kwargs):
    """Generate a soundtrack (`GeneratedAudio`) for `video` with the last trained mapper (see
    `load_pipeline` to choose one); keyword arguments go to `VideoToAudioPipeline.__call__` (preset,
    scheduler, num_inference_steps, guidance_scale, negative_mode, seed, mode, overlap_seconds,
    reference_audio, ...). The arguments are checked before any model is loaded."""
    from mapper.generation.pipeline import VideoToAudioPipeline
    from mapper.last_mapper import last_mapper

    VideoToAudioPipeline.check_call(video, label, **kwargs)
    key = str(last_mapper())
    if key not in _default_pipelines:
        _default_pipelines.clear()  # keep at most one set of models in memory
        _default_pipelines[key] = load_pipeline(mapper=key)
    return _default_pipelines[key](video, label, **kwargs)
