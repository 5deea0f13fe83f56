"""`UnlearnConfig`: the options of one `interp unlearn` run.

Options every method reads sit at the top level; an option only one method reads sits in that method's nested
dataclass, named after the method (`cfg.sspu.target`, `cfg.sae_clamping.clamp`). On the command line and in
`with_options` the nested options keep their plain names (`--target`), so every option name is unique.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace

from interp.errors import InterpError, check_number
from interp.options import check_fields, opt
from interp.rundir import config_changes

from .clamp import ClampOptions
from .sspu import SSPUOptions

RETAIN = "add_sub,sequence,lcm,function"


@dataclass
class UnlearnConfig:
    model: str | None = opt(None, "default: pythia-mini fine-tuned on every task family (cached at runs/unlearn/)")
    forget: str = opt("mul_div", "the task family to forget")
    retain: str = opt(RETAIN, "comma-separated task families to keep")
    sae: str | None = opt(None, "SAE run with resid_post SAEs of the model (default: train one, cached)")
    layer: int | None = opt(None, "default: chosen from the data among the SAE run's layers >= 2")
    features: int = opt(48, "forget (and irrelevant) features", min=1)
    steering_coef: float = opt(1.0, "c = coef x mean activation norm at the layer on forget prompts")
    control_draws: int = opt(8, "random control vectors u drawn; keeps the one whose half-way push leaves the least "
                                "of the forget answers (SSPU and RMU alike)", min=1)
    retain_weight: float = opt(120.0, "weight of the retain hold (0 switches it off)")
    params: str = opt("mlp_out", "module suffixes trained in layers l-2..l (mlp_out: the MLP output projection)")
    push_at: str = opt("distinct", "forget positions pushed: distinct (prefix in no retain prompt) or all",
                       choices=("distinct", "all"))
    push_weight: str = opt("known", "forget prompts' push (SSPU and RMU): known (each prompt's by the model's "
                                    "current p(answer) + 0.1) or uniform", choices=("uniform", "known"))
    forget_text: str = opt("prompts+words", "forget data: prompts+words (the task's prompts and 'a times b is', "
                                            "'the quotient of p and b is'; mul_div) or prompts",
                           choices=("prompts", "prompts+words"))
    steps: int = opt(2400, "optimiser steps", min=1)
    lr: float = opt(2e-3, "learning rate")
    batch_size: int = opt(32, "prompts per step and domain", min=1)
    n_eval: int = opt(1000, "test prompts per task for every metric, at most (default: every task's whole test "
                            "split, 210 to 1000 prompts)", min=1)
    probe_examples: int = opt(1000, "examples the linear-probe attack trains on", min=1)
    relearn_examples: int = opt(10, "examples the relearning attack trains on", min=1)
    relearn_steps: int = opt(20, "steps of the relearning attack", min=1)
    # relearning reports the best of the attacker's rates: one fixed rate misjudges the attack (5e-4 takes the
    # original model from 88 to 52-58, damaging more than it restores)
    relearn_lrs: str = opt("1e-5,3e-5,1e-4,3e-4,1e-3", "the relearning attacker's learning rates; the best is "
                                                       "reported")
    relearn_draws: int = opt(1, "independent draws of the relearning examples, averaged at each rate", min=1)
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str = opt("runs/unlearn/run", "the run directory")
    sspu: SSPUOptions = opt(factory=SSPUOptions)
    sae_clamping: ClampOptions = opt(factory=ClampOptions)

    def forget_tasks(self) -> list[str]:
        return [t.strip() for t in self.forget.split(",") if t.strip()]

    def retain_tasks(self) -> list[str]:
        return [t.strip() for t in self.retain.split(",") if t.strip()]

    def relearn_rates(self) -> list[float]:
        try:
            rates = [float(x) for x in self.relearn_lrs.split(",") if x.strip()]
        except ValueError:
            raise InterpError(f"--relearn-lrs takes comma-separated numbers, got {self.relearn_lrs!r}") from None
        if not rates or not all(0 < r < float("inf") for r in rates):  # false for nan too
            raise InterpError("--relearn-lrs needs at least one rate, every rate > 0")
        return rates

    def validate(self) -> None:
        self._validate_tasks()
        check_fields(self)
        self.sspu.validate()
        if self.forget_text == "prompts+words" and self.forget_tasks() != ["mul_div"]:
            raise InterpError("--forget-text prompts+words needs --forget mul_div, the family the corpus words")
        check_number("--lr", self.lr)
        check_number("--steering-coef", self.steering_coef)
        check_number("--retain-weight", self.retain_weight, inclusive=True)  # 0 switches the hold off
        self.sae_clamping.validate()
        self.relearn_rates()

    def _validate_tasks(self) -> None:
        from interp.tasks import trainable

        forget, retain = self.forget_tasks(), self.retain_tasks()
        if not forget or not retain:
            raise InterpError("the forget and the retain domain must each name at least one task")
        if len(forget) != 1:
            raise InterpError(f"--forget takes one task family, got {', '.join(forget)}")
        for t in forget + retain:
            trainable(t)
        if overlap := set(forget) & set(retain):
            raise InterpError(f"forget and retain overlap in {', '.join(sorted(overlap))}")


def option_groups() -> dict[str, tuple[str, ...]]:
    """Nested option group -> its option names (the names the command line uses)."""
    return {f.name: tuple(g.name for g in fields(f.default_factory)) for f in fields(UnlearnConfig)
            if f.default_factory is not MISSING}


def with_options(cfg: UnlearnConfig, **options) -> UnlearnConfig:
    """`cfg` with options replaced by their plain names, nested ones included (`with_options(cfg, target="erase")`)."""
    owner = {name: group for group, names in option_groups().items() for name in names}
    top = {k: v for k, v in options.items() if k not in owner}
    nested = {}
    for name, value in options.items():
        if name in owner:
            nested.setdefault(owner[name], {})[name] = value
    changed = {group: replace(getattr(cfg, group), **values) for group, values in nested.items()}
    return replace(cfg, **top, **changed)


def from_options(**options) -> UnlearnConfig:
    """An `UnlearnConfig` from plain option names, as the command line gives them."""
    return with_options(UnlearnConfig(), **options)


def flat(config: dict) -> dict:
    """A saved config (nested or, from before the options were grouped, flat) as one level of plain names."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= value
        else:
            out[key] = value
    return out


# What an option added later was for runs saved before it: its default then, where the default has moved since.
ADDED_AS = {"forget_text": "prompts", "control_draws": 1}


def same_options(saved: dict, cfg: UnlearnConfig) -> bool:
    """Whether a saved config is `cfg`; an option added since it was saved counts as what it was when added.
    A config that holds a grouped option at its top level was saved before the grouping, when the run drew its
    rows from other random streams: it never matches, so such a run is neither resumed nor read back."""
    if any(name in saved for names in option_groups().values() for name in names):
        return False
    return not config_changes(flat(saved), flat(asdict(cfg)), flat(asdict(UnlearnConfig())) | ADDED_AS)
