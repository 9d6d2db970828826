"""The procedural toy-foley world, as a library: the training recipe, the tests and the notebooks
build it (``python -m recipes.make_toy_data`` is its command line).

    classes  the five sound classes: what is seen and heard for the same events
    world    planning (every random choice, from the seed), rendering, mp4 encoding, make_toy_world
"""
from toy_world.classes import BY_LABEL, CLASSES, SIZE, VIDEO_FPS, ToyClass
from toy_world.world import clip_window_audio, make_toy_world, plan_world, render_audio, render_clip

__all__ = ["BY_LABEL", "CLASSES", "SIZE", "VIDEO_FPS", "ToyClass", "clip_window_audio", "make_toy_world", "plan_world",
           "render_audio", "render_clip"]
