"""Sampling settings: the paper's decoding, a fast and a turbo preset, and any diffusers scheduler by name.

A ``SamplingConfig`` says how AudioLDM-2 turns noise into a latent: which diffusers scheduler,
how many steps, the classifier-free-guidance scale and what guidance pushes away from. Presets
are data:

    paper   DDIM, 100 steps, CFG 3.5, negative prompt ``DEFAULT_NEGATIVE_PROMPT``   (MFM-Mapper's setting)
    fast    Euler, 25 steps, CFG 5 (50 UNet evaluations per clip)                    (the cheapest setting within
            5 % of the best FD and 0.02 of the best class accuracy, over three sampling seeds, of the settings
            ``benchmarks.sampling``'s grid shortlists: the best mean FD, x0.87 of DDIM-100's, class x1.06;
            DDIM at 25 steps and CFG 5 ties it, FD 6.346 against 6.342)
    turbo   Euler ancestral, 4 steps, CFG 5 (8 UNet evaluations per clip)           (the best mean FD at <= 8
            UNet evaluations of the same measurement: FD x0.98 and class accuracy x1.10 of the paper's DDIM-100,
            docs/sampling/choice.json)

Both were chosen on 30 held-out toy clips with the toy decoder: the whole grid (288 settings) at one sampling seed
shortlists, three seeds decide (``docs/sampling/sampling.md``); ``tests/test_sampling_presets.py`` holds them to
``docs/sampling/choice.json``. ``fast`` was Euler ancestral at 25 steps and CFG 5 from session 8 to 14 (the best
FD of the grid's one seed, x0.99 of DDIM-100's over three) and DPM-Solver++ 2M at 25 steps and CFG 3.5 before.

Continuations. ``turbo`` samples a request that continues a known latent (a video longer than one window, whose
later windows continue the previous one's overlap, or a reference sound) with Euler's deterministic solver on the
same sigmas (``continuation_scheduler``), all its windows alike; in crossfade mode too, so the two join modes
differ only in the join. Euler ancestral draws fresh noise at every step, and its continuations join no better
than a splice: on a Gaussian-process oracle whose exact continuation is known, seam 0.86 and 0.91 against a
splice's 1.28 and 0.80 (Euler: 0.65 and 1.41 against 2.77 and 2.26); on the 60 s toy video of
``notebooks/03_long_form.ipynb`` (toy decoder, 10 steps, seeds 0 and 1), inpainted joins scored worse than
cross-faded ones with Euler ancestral (mel-jump 2.37 and 8.72 against 1.59 and 3.58) and better with Euler (2.18
and 1.83 against 2.65 and 2.01). One window without a reference keeps the preset's scheduler. Naming a scheduler
samples everything with it. ``fast`` (Euler) and ``paper`` (DDIM) are deterministic and continue with their own.

Any scheduler diffusers considers compatible with AudioLDM-2's (epsilon-prediction DDPM family:
``DDIMScheduler.compatibles``) can be named instead, e.g. ``"UniPCMultistepScheduler"``. It is built
with ``from_config`` on the checkpoint's own scheduler config, so the training noise schedule
(AudioLDM-2's betas 0.0015..0.0195) always carries over; only the solver changes.

The negative GPT-2-stream condition (``negative_mode``):

    audioldm2  what AudioLDM-2 itself computes for the negative prompt: CLAP + Flan-T5 of the text ->
               projection -> AudioLDM-2's *original* GPT-2 (never the fine-tuned mapper), 8
               autoregressive steps. Computed with our own KV-cache loop, because the pipeline's
               text -> GPT-2 path crashes on the hub's ``GPT2Model`` (diffusers issue #12630).
    zeros      AudioLDM-2's unconditional AudioMAE condition, zeros(8, 768): needs no text models.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import diffusers
from diffusers import SchedulerMixin

from mapper.decoders.audioldm2 import DEFAULT_NEGATIVE_PROMPT, NEGATIVE_MODES, NegativeMode
from mapper.generation.arguments import ArgumentError, check_choice, check_eta, check_guidance, check_steps


@dataclass(frozen=True)
class SamplingConfig:
    scheduler: str = "DDIMScheduler"  # a diffusers scheduler class name
    num_inference_steps: int = 100
    guidance_scale: float = 3.5  # > 1 enables classifier-free guidance (as in diffusers)
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT  # T5 stream of the negative branch
    negative_mode: NegativeMode = "audioldm2"  # GPT-2 stream of the negative branch (see module doc)
    eta: float = 0.0  # DDIM's eta (stochasticity); ignored by schedulers without it
    scheduler_kwargs: dict = field(default_factory=dict)  # passed to from_config (solver options)
    # The scheduler of a request that continues a known latent (a video longer than one window, or a reference
    # sound), for all of its windows; None: ``scheduler`` itself. See "Continuations" above.
    continuation_scheduler: str | None = None

    def __post_init__(self):  # the scheduler's name and the steps' upper bound are checked against a model
        check_steps(self.num_inference_steps)
        check_guidance(self.guidance_scale)
        check_eta(self.eta)
        check_choice("negative_mode", self.negative_mode, NEGATIVE_MODES)
        if not isinstance(self.scheduler, str):
            raise ArgumentError("scheduler", f" must be a diffusers scheduler class name, got {self.scheduler!r}")
        if self.continuation_scheduler is not None and not isinstance(self.continuation_scheduler, str):
            raise ArgumentError("continuation_scheduler", f" must be a diffusers scheduler class name or None, got "
                                                          f"{self.continuation_scheduler!r}")
        if not isinstance(self.negative_prompt, str):
            raise ArgumentError("negative_prompt", f" must be a string, got {self.negative_prompt!r}")

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1.0

    def for_continuation(self) -> "SamplingConfig":
        """What a request that continues a known latent is sampled with: ``continuation_scheduler`` (its own
        default options) in place of ``scheduler``, or this config when it names none."""
        if self.continuation_scheduler is None or self.continuation_scheduler == self.scheduler:
            return self
        return dataclasses.replace(self, scheduler=self.continuation_scheduler, scheduler_kwargs={},
                                   continuation_scheduler=None)


SAMPLING_PRESETS: dict[str, SamplingConfig] = {
    "paper": SamplingConfig(),
    "fast": SamplingConfig(scheduler="EulerDiscreteScheduler", num_inference_steps=25, guidance_scale=5.0),
    "turbo": SamplingConfig(scheduler="EulerAncestralDiscreteScheduler", num_inference_steps=4, guidance_scale=5.0,
                            continuation_scheduler="EulerDiscreteScheduler"),
}


def sampling_config(preset: str | SamplingConfig = "paper", **overrides) -> SamplingConfig:
    """A preset (name or config) with the non-None ``overrides`` applied.

    Naming another scheduler drops the preset's solver options (they belong to its scheduler) and its
    continuation scheduler (the named one then samples continuations too, unless one is named as well).
    """
    if isinstance(preset, str):
        if preset not in SAMPLING_PRESETS:
            raise ValueError(f"unknown sampling preset {preset!r}; known: {', '.join(SAMPLING_PRESETS)}")
        preset = SAMPLING_PRESETS[preset]
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if "scheduler" in overrides and overrides["scheduler"] != preset.scheduler:
        overrides.setdefault("scheduler_kwargs", {})
        overrides.setdefault("continuation_scheduler", None)
    return dataclasses.replace(preset, **overrides)


def scheduler_class(base: SchedulerMixin, scheduler: str, name: str = "scheduler") -> type[SchedulerMixin]:
    """The diffusers class called ``scheduler`` if it can run ``base``'s noise schedule (ValueError
    naming the argument ``name`` otherwise)."""
    compatible = {cls.__name__: cls for cls in base.compatibles}
    compatible[type(base).__name__] = type(base)
    cls = compatible.get(scheduler)
    if cls is None:
        known = getattr(diffusers, scheduler, None)
        reason = "is not a diffusers scheduler" if known is None else "is not compatible with this model's schedule"
        raise ArgumentError(name, f" {scheduler!r} {reason}; choose one of {', '.join(sorted(compatible))}")
    return cls


def check_sampling(config: SamplingConfig, base: SchedulerMixin) -> None:
    """What a config can only be checked against a model's scheduler: its name, and no more steps
    than the schedule has timesteps (DDIM would refuse more only when sampling starts)."""
    scheduler_class(base, config.scheduler)
    if config.continuation_scheduler is not None:
        scheduler_class(base, config.continuation_scheduler, "continuation_scheduler")
    check_steps(config.num_inference_steps, most=base.config.num_train_timesteps)


def make_scheduler(base: SchedulerMixin, config: SamplingConfig) -> SchedulerMixin:
    """A fresh scheduler of ``config.scheduler`` on ``base``'s noise schedule.

    Fresh per sampling run: diffusers schedulers are stateful (step index, multistep history).
    """
    return scheduler_class(base, config.scheduler).from_config(base.config, **config.scheduler_kwargs)
