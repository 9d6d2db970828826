"""The demo's toy examples come from a world read by ``toy_world.read_world`` (no browser needed): the
clips on disk, held-out ones first, an upload recognised by its bytes, and a bad --world named in one line."""
from __future__ import annotations

import shutil

import pytest

from recipes.demo import MAX_EXAMPLES, find_world


def test_examples_are_the_clips_on_disk_held_out_first(toy_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(toy_world[0], world)
    (world / "videos" / "toy_00003.mp4").unlink()  # a clip whose video is gone is no example
    root, examples = find_world(str(world))
    assert root == world and examples.root == world
    assert "toy_00003" not in [c["id"] for c in examples.clips] and len(examples.clips) == 15
    shown = examples.examples()
    assert len(shown) == min(MAX_EXAMPLES, 15)
    order = {"test": 0, "val": 1, "train": 2}
    assert [order[c["split"]] for c in shown] == sorted(order[c["split"]] for c in shown)
    clip = shown[0]
    copy = tmp_path / f"{clip['id']}.mp4"  # an upload: same name, same bytes
    shutil.copy(examples.video(clip), copy)
    assert examples.clip_of(copy) == clip
    copy.write_bytes(b"other bytes")
    assert examples.clip_of(copy) is None


@pytest.mark.parametrize("make, reason", [
    (lambda root: None, "world.json: no such file"),
    (lambda root: (root / "world.json").write_text("{}"), "world.json: not a toy world's plan"),
])
def test_a_bad_world_option_is_one_line_naming_world_json(tmp_path, make, reason):
    make(tmp_path)
    with pytest.raises(ValueError) as info:
        find_world(str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"--world {tmp_path}/{reason}") and "\n" not in message, message
