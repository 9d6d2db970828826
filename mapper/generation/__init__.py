"""Generation: video -> extractors -> mapper -> AudioLDM-2 -> soundtrack, as a diffusers pipeline.

    pipeline              VideoToAudioPipeline: registered components, stream() and __call__, and the one
                          sampling path from tokens to latents / audio (sample_latents, render_tokens)
    call_plan             __call__'s arguments checked into requests and settings (the API's and the CLI's)
    outputs               GeneratedAudio, GenerationRequest and the stream's events
    loading               load_pipeline: the parts a trained mapper names, offline unless a hub id is named
    extractors_component  the frozen extractors as a diffusers component (save/load with the pipeline)
    sampling              sampling presets (paper, fast) and any compatible diffusers scheduler
    long_form             windows of a long video on one latent timeline, and the Stitcher
    window_envelope       a window's timing-control target, read from its clip's predicted envelope
    window_tokens         the mapper tokens a window conditions on (a short video: those inside it)
    seams                 how audible the joins of a long soundtrack are
    wav, mux              writing the soundtrack (wav) and putting it into a copy of the video (mp4)
    arguments             the rule for every generation argument, shared by the CLI and the API
"""
from mapper.generation.loading import load_pipeline, parse_dtype
from mapper.generation.outputs import AudioChunk, ClipDone, ClipFailed, GeneratedAudio, GenerationRequest
from mapper.generation.pipeline import VideoToAudioPipeline

__all__ = [
    "AudioChunk",
    "ClipDone",
    "ClipFailed",
    "GeneratedAudio",
    "GenerationRequest",
    "VideoToAudioPipeline",
    "load_pipeline",
    "parse_dtype",
]
