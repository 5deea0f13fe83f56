"""Stages 1 and 2, shared by every method: the model and its SAEs, the layer and features (stage 1), the
subspaces (stage 2), c and each method's control vector u. `Setup.train(name, cfg)` runs one registered method
on them; `unlearn`, the frontier and the benchmark scripts all go through it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.errors import InterpError

from .config import UnlearnConfig

TUNED = Path("runs/unlearn/pythia-mini-tasks")
SAE_LAYERS = (1, 2, 3)  # the cached SAE run's layers; the update's candidates are those with l >= 2


def tuned_model(path: Path = TUNED) -> str:
    """The default model: pythia-mini fully fine-tuned on all five task families (1500 steps), made once."""
    from interp.finetune import FinetuneConfig, finetune

    final = path / "checkpoints" / "step-1500"
    if not (final / "config.json").exists():
        finetune(FinetuneConfig(task="add_sub,mul_div,sequence,lcm,function", steps=1500, eval_every=500,
                                checkpoint_every=500, out=str(path)))
    return str(final)


def sae_run(cfg: UnlearnConfig, model: str) -> Path:
    """The SAE run: `--sae`, or one trained on the candidate layers and cached beside the model."""
    from saes.config import SAETrainConfig
    from saes.train import train_sae

    if cfg.sae:
        return check_sae_run(Path(cfg.sae))
    run = Path(model).parent.parent / "sae" if Path(model).parent.name == "checkpoints" else Path("runs/unlearn/sae")
    if not (run / "metrics.json").exists():
        train_sae(SAETrainConfig(model=model, hooks=[f"blocks.{l}.hook_resid_post" for l in SAE_LAYERS], k=[32],
                                 tokens=500_000, feature_tokens=32_768, eval_tokens=16_384, out=str(run)),
                  resume=(run.with_name(run.name + ".partial")).exists())
    return run


def check_sae_run(run: Path) -> Path:
    """`run` if it is a train-sae run directory (config.json and saes/); one clear line otherwise."""
    if not (run / "config.json").is_file() or not (run / "saes").is_dir():
        raise InterpError(f"--sae {run} is not a train-sae run directory (it needs config.json and saes/)")
    return run


def load_saes(run: Path, model: str) -> dict[int, tuple[str, object, Path]]:
    """layer -> (hook, SAE, its directory) for the resid_post SAEs of `run`, checked to belong to `model`."""
    from saes.train import load_sae

    trained_on = json.loads((run / "config.json").read_text()).get("model")
    if Path(str(trained_on)).resolve() != Path(model).resolve() and trained_on != model:
        raise InterpError(f"the SAE run {run} was trained on {trained_on}, not on {model}")
    saes = {}
    for d in sorted((run / "saes").glob("*")):
        sae = load_sae(d)
        hook = sae.cfg.metadata.hook_name
        m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", hook)
        if not m:
            raise InterpError(f"{d} is an SAE of {hook}; unlearning needs blocks.L.hook_resid_post SAEs")
        saes[int(m.group(1))] = (hook, sae, d)
    if not saes:
        raise InterpError(f"no SAEs in {run / 'saes'}")
    return saes


@dataclass
class Setup:
    """Everything stages 1 and 2 produce, and what the update needs: shared by `unlearn` and the sweeps."""
    model_name: str
    base: object  # the frozen HF model
    tok: object
    data: object  # data.Batches
    sel: object  # select.Selection
    sae: object
    sae_dir: Path
    relevant: torch.Tensor
    irrelevant: torch.Tensor
    names: list[str]  # the parameters the update may change
    coef: float  # c
    u: dict  # method name -> its control vector

    def context(self, name: str, cfg: UnlearnConfig):
        from .method import Context

        return Context(self.base, self.data, self.names, self.sel.layer, cfg, self.coef, self.u.get(name),
                       self.relevant, self.sae, self.sel.forget, self.sae_dir)

    def train(self, name: str, cfg: UnlearnConfig, progress=None):
        """Registered method `name` trained on this setup with `cfg`'s options."""
        from . import loop
        from .registry import get_method

        return loop.train(get_method(name), self.context(name, cfg), progress)


def prepare(cfg: UnlearnConfig) -> Setup:
    """Load the model and SAEs, choose the layer and features (stage 1), build the subspaces (stage 2)."""
    from interp.loading import load_model

    from .data import training_data
    from .hooks import param_names
    from .select import basis

    model_name = cfg.model or tuned_model()
    loaded = load_model(model_name)
    saes = load_saes(sae_run(cfg, model_name), model_name)
    if loaded.is_diffusion:  # its answers sit at masks, not after the prompt: every forget/retain term would misread
        raise InterpError(f"unlearning runs on autoregressive models; {model_name} is a diffusion model")
    base = load_model(model_name, bridge=False).model.eval()  # a plain HF model (the bridge wraps its own copy)
    data = training_data(loaded.tokenizer, cfg)
    sel = choose(loaded.bridge, saes, data, cfg)
    _, sae, sae_dir = saes[sel.layer]
    relevant, irrelevant = basis(sae, sel.forget), basis(sae, sel.irrelevant)
    layers = [l for l in range(sel.layer - 2, sel.layer + 1) if l >= 0]
    names = param_names(base, layers, cfg.params)
    if not names:
        raise InterpError(f"--params {cfg.params!r} matches no parameter in layers {layers}")
    coef, u = control_vectors(base, data, sel.layer, irrelevant, cfg)
    return Setup(model_name, base, loaded.tokenizer, data, sel, sae, sae_dir, relevant, irrelevant, names, coef, u)


def choose(bridge, saes: dict, data, cfg: UnlearnConfig):
    """Stage 1 on up to 512 forget and 512 retain prompts per task, among the candidate layers."""
    from .select import select

    enc = lambda batch: [(batch[0][i:i + 64], batch[1][i:i + 64]) for i in range(0, min(len(batch[0]), 512), 64)]
    deep = {l: v[:2] for l, v in saes.items() if l >= 2}  # the update spans l-2..l: layers with two below them
    candidates = deep if deep and cfg.layer is None else {l: v[:2] for l, v in saes.items()}
    return select(bridge, candidates, enc(data.forget), [b for r in data.retain for b in enc(r)], cfg.features,
                  cfg.layer, cfg.sspu.irrelevant)


def control_vectors(base, data, layer: int, irrelevant: torch.Tensor, cfg: UnlearnConfig) -> tuple[float, dict]:
    """c, and u for every registered method that asks for one (`control`), each the best of `control_draws`."""
    from .hooks import capture
    from .push import control_vector, half_push_recall
    from .registry import UNLEARN_METHODS

    with torch.no_grad(), capture(base, layer) as h:
        base(input_ids=data.forget[0][:256])
    coef = cfg.steering_coef * h[0].norm(dim=-1).mean().item()
    inputs, targets = (t[:512] for t in data.forget)  # training prompts: choosing u never sees the test split
    mask = data.forget_mask[:512] if data.forget_mask is not None else torch.ones_like(inputs, dtype=torch.bool)
    score = lambda u: half_push_recall(base, layer, inputs, targets, mask, coef * u)
    bases = {"irrelevant": irrelevant, "free": None}
    u = {m.name: control_vector(base.config.hidden_size, cfg.seed, bases[m.control], cfg.control_draws, score)
         for m in UNLEARN_METHODS.values() if m.control is not None}
    return coef, u
