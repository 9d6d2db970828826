"""Evaluation: the metrics V2A papers report (FD, KL, IS, IB-score, DeSync), computed the way
MMAudio's av-benchmark computes them, offline, with embedders at their real architecture."""
