"""The grid ``benchmarks.sampling`` measures and the rules its report chooses presets by (one owner for both)."""
from __future__ import annotations

from dataclasses import dataclass

# name -> (diffusers class, solver options): what SamplingConfig(scheduler=..., scheduler_kwargs=...) takes
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "use_karras_sigmas": True}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
}
STEPS = (4, 6, 8, 12, 16, 25, 50, 100)
GUIDANCE = (1.0, 2.0, 3.5, 5.0)
QUICK = {"schedulers": ("ddim", "dpmpp_2m", "unipc"), "steps": (4, 8, 25), "guidance": (1.0, 3.5), "clips": 8}
REFERENCE = ("ddim", 100, 3.5)  # the paper's decoding: what turbo is measured against
FD_TOLERANCE, CLASS_TOLERANCE = 0.05, 0.02  # fast: within 5 % of the best FD and 0.02 of the best accuracy
TURBO_EVALUATIONS = 8  # UNet evaluations per clip
# The presets are chosen from means over sampling seeds (--seed-check), among the settings the one-seed grid
# shortlists: within 25 % of its best FD and, among those, 0.07 (two clips of 30) of their best class accuracy;
# among all settings and among the cheap ones (<= TURBO_EVALUATIONS). On 30 clips one setting moves that much
# from seed to seed (euler_a/25/5: FD 5.44, 6.99, 9.14; class 0.93, 0.87, 0.90).
SHORTLIST_FD, SHORTLIST_CLASS = 0.25, 0.07


@dataclass(frozen=True)
class Setting:
    scheduler: str  # a SCHEDULERS name
    steps: int
    guidance: float

    @property
    def key(self) -> str:
        return f"{self.scheduler}/{self.steps}/{self.guidance:g}"

    @classmethod
    def of(cls, key: str) -> "Setting":
        scheduler, steps, guidance = key.split("/")
        return cls(scheduler, int(steps), float(guidance))

    @property
    def unet_evaluations(self) -> int:
        """UNet evaluations per clip: a guided step is two (its conditional and unconditional rows); Heun's
        steps, all but the last, are two (its second-order correction)."""
        steps = 2 * self.steps - 1 if self.scheduler == "heun" else self.steps
        return steps * (2 if self.guidance > 1 else 1)

    def config(self):
        from mapper.generation.sampling import sampling_config

        cls, options = SCHEDULERS[self.scheduler]
        return sampling_config("paper", scheduler=cls, num_inference_steps=self.steps, guidance_scale=self.guidance,
                               scheduler_kwargs=dict(options))


def is_cheap(row: dict) -> bool:
    """A measured row of at most ``TURBO_EVALUATIONS`` UNet evaluations per clip: turbo's pool."""
    return row["unet_evaluations_per_clip"] <= TURBO_EVALUATIONS + 1e-9


def is_reference(row: dict) -> bool:
    """The measured row of the ``REFERENCE`` setting (the paper's decoding)."""
    return (row["scheduler"], row["steps"], row["guidance"]) == REFERENCE


def shortlist(rows: list[dict]) -> list[str]:
    """The keys of the grid's ``rows`` (one seed) that the presets are chosen among across seeds (``SHORTLIST_FD``,
    ``SHORTLIST_CLASS``), in the rows' order."""
    cheap = [r for r in rows if is_cheap(r)]
    keys = set()
    for pool in (rows, cheap) if cheap else (rows,):
        best_fd = min(r["fd"] for r in pool)
        close = [r for r in pool if r["fd"] <= (1 + SHORTLIST_FD) * best_fd]
        best_accuracy = max(r["class_accuracy"] for r in close)
        keys |= {r["key"] for r in close if r["class_accuracy"] >= best_accuracy - SHORTLIST_CLASS - 1e-9}
    return [r["key"] for r in rows if r["key"] in keys]


def grid(schedulers, steps, guidance) -> list[Setting]:
    """The settings in run order: the reference first, then by UNet work (steps x guidance branches)."""
    settings = [Setting(s, n, g) for s in schedulers for n in steps for g in guidance]
    settings.sort(key=lambda s: (s.unet_evaluations, s.scheduler, s.guidance))
    reference = Setting(*REFERENCE)
    return [reference] + [s for s in settings if s != reference]
