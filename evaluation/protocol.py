"""What the evaluation protocol fixes for every run: how much of each file is scored.

av-benchmark scores the first ``--audio_length`` seconds of each generated and reference file (8 for
VGGSound, as the MFM-Mapper paper and MMAudio report it); it has no default. Every default of the
toolkit is this one number: ``recipes.evaluate --audio-length``, ``evaluation.suite.SuiteOptions``,
the tables' test set (less when a test clip is shorter) and the toy classifier's accuracy.
"""
from __future__ import annotations

SCORED_SECONDS = 8.0  # av-benchmark's --audio_length for VGGSound
