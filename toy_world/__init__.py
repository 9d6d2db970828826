"""The procedural toy-foley world, a dataset: its writer, its reader and where it lives by default. The
training recipe, the demo, the evaluation, the tests and the notebooks build it (``python -m
recipes.make_toy_data`` is its command line); they read its plan only through ``read_world``.

    classes  the five sound classes: what is seen and heard for the same events
    other_classes  four other classes, for a world unlike the default (``class_set="other"``)
    world    the writer: planning (every random choice, from the seed), rendering, mp4 encoding, make_toy_world
    layout   the names of a world's files (world.json, videos/, metadata.csv)
    reader   read_world: a world's folder as a checked ToyWorld (clips, splits, event times, sample rate)
    folders  where the toy recipe keeps its world and feature cache unless told otherwise
"""
from toy_world.classes import BY_LABEL, CLASSES, SIZE, VIDEO_FPS, ToyClass
from toy_world.reader import ToyWorld, read_world, window_event_times, world_root_of
from toy_world.world import clip_window_audio, make_toy_world, plan_world, render_audio, render_clip

__all__ = ["BY_LABEL", "CLASSES", "SIZE", "VIDEO_FPS", "ToyClass", "ToyWorld", "clip_window_audio", "make_toy_world",
           "plan_world", "read_world", "render_audio", "render_clip", "window_event_times", "world_root_of"]
