"""Which generated file is scored against which reference: by exact stem, never by guesswork.

av-benchmark pairs through ``clean_sample_name``, which slices names by their string length, so a
name of another length is silently left unpaired or cut wrong. Here a generated file pairs with
the reference of the same stem; the optional ``vggsound`` rule maps the generation-name patterns
seen in V2A releases (``000000014_<ytid>_000007-0``, ``<ytid>_000007-0``, ``Y<ytid>_000001_0``) to
``<ytid>_<start>`` with a regular expression that matches the whole name or nothing. Unpaired
files are reported by name, and so are the audio-named entries that are no readable file (a dangling
symlink, a folder named ``x.wav``): they are left out of the pairing with their one-line reason
(:attr:`Pairing.unusable`) instead of stopping the run when they are read.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
NAME_RULES = ("exact", "vggsound")
# an 11-character YouTube id, then the start second in 6 digits
_VGGSOUND_NAME = re.compile(r"^(?:\d{9}_|Y)?(?P<id>[A-Za-z0-9_-]{11}_\d{6})(?:[-_]\d+)?$")


@dataclass
class Pairing:
    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)  # (name, generated, reference)
    unpaired_generated: list[Path] = field(default_factory=list)
    unpaired_reference: list[Path] = field(default_factory=list)
    # audio-named entries of either folder that are no readable file -> "{path}: reason" (left out)
    unusable: dict[Path, str] = field(default_factory=dict)


def unusable_reason(path: Path, kind: str = "an audio file") -> str | None:
    """Why ``path`` (an entry named as ``kind``) cannot be read as a file, in one line naming it; None if it can."""
    try:
        mode = path.stat().st_mode  # follows a symlink
    except FileNotFoundError:
        if path.is_symlink():
            return f"{path}: a dangling symlink (its target {os.readlink(path)} does not exist)"
        return f"{path}: disappeared while the folder was listed"
    except OSError as error:  # a symlink loop, a name too long, no permission on a folder on the way
        return f"{path}: cannot be read ({error.strerror or type(error).__name__})"
    if stat.S_ISDIR(mode):
        return f"{path}: a folder, not {kind}"
    if not stat.S_ISREG(mode):
        return f"{path}: not a regular file (a device, pipe or socket)"
    if not os.access(path, os.R_OK):
        return f"{path}: no permission to read it"
    return None


def list_audio(folder: str | Path, unusable: dict[Path, str] | None = None) -> dict[str, Path]:
    """Audio files of ``folder`` by stem; ValueError if two files share a stem (a.wav and a.flac).
    Audio-named entries that are no readable file are left out, with their reason in ``unusable``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
            continue  # hidden names are temporaries of a writer
        reason = unusable_reason(path)
        if reason is not None:
            if unusable is not None:
                unusable[path] = reason
            continue
        if path.stem in found:
            raise ValueError(f"{folder}: {found[path.stem].name} and {path.name} have the same name; keep one")
        found[path.stem] = path
    return found


def sample_name(stem: str, rule: str = "exact") -> str:
    """The reference name a generated file's stem stands for under ``rule``."""
    if rule == "exact":
        return stem
    if rule == "vggsound":
        match = _VGGSOUND_NAME.match(stem)
        return match.group("id") if match else stem
    raise ValueError(f"name rule {rule!r} is not one of {', '.join(NAME_RULES)}")


def pair_files(generated: str | Path, reference: str | Path, rule: str = "exact") -> Pairing:
    pairing = Pairing()
    gen, ref = list_audio(generated, pairing.unusable), list_audio(reference, pairing.unusable)
    used = set()
    for stem, path in gen.items():
        name = sample_name(stem, rule)
        if name in ref:
            pairing.pairs.append((name, path, ref[name]))
            used.add(name)
        else:
            pairing.unpaired_generated.append(path)
    pairing.unpaired_reference = [path for name, path in ref.items() if name not in used]
    return pairing
