"""Which generated file is scored against which reference: by exact stem, never by guesswork.

av-benchmark pairs through ``clean_sample_name``, which slices names by their string length, so a
name of another length is silently left unpaired or cut wrong. Here a generated file pairs with
the reference of the same stem; the optional ``vggsound`` rule maps the generation-name patterns
seen in V2A releases (``000000014_<ytid>_000007-0``, ``<ytid>_000007-0``, ``Y<ytid>_000001_0``) to
``<ytid>_<start>`` with a regular expression that matches the whole name or nothing. Unpaired
files are reported by name.
"""
from __future__ import annotations

import re
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


def list_audio(folder: str | Path) -> dict[str, Path]:
    """Audio files of ``folder`` by stem; ValueError if two files share a stem (a.wav and a.flac)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
            continue  # hidden names are temporaries of a writer
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
    gen, ref = list_audio(generated), list_audio(reference)
    pairing = Pairing()
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
