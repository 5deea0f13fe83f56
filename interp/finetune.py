"""The fine-tuning loop shared by the workbench: full or PEFT-LoRA fine-tuning on a task's train split.

Loss is on the answer's tokens only (AR: the answer after the prompt, teacher-forced, then end-of-sequence where a
subword tokenizer could run on into the answer; diffusion: the answer at `<mask>`s appended to the prompt,
LLaDA's SFT objective with every answer position masked; interp/answers.py). The learning rate warms up
and decays linearly. Exact-match accuracy on the test
split is measured every `eval_every` steps. Every `checkpoint_every` steps the model (or adapter) is saved
as `checkpoints/step-N/` and the optimizer state to `state.pt`, so a killed run resumes where it stopped.
Batch i is a pure function of (seed, i), so a resumed run sees the data an unbroken one would.
"""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import InterpError, check_number
from .interrupt import deferred_interrupt
from .options import check_fields, device_map_field, dtype_field, opt
from .evaluate import accuracy
from .rundir import config_changes
from .seeds import manual_seed, torch_generator
from .tasks import make_examples


@dataclass
class LoRAOptions:
    """What only the adapter methods (lora, adalora) read."""
    r: int = opt(8, "LoRA rank (AdaLoRA: the final budget)", flag="lora_r")
    alpha: int | None = opt(None, "LoRA alpha (default 2 x rank)", flag="lora_alpha", min=1)
    target_modules: list[str] = opt(factory=list, cli=False)  # empty: every projection of the family (families.py)
    # per-module ranks and alphas (PEFT patterns: module name -> value), and a learning rate for the adapters of
    # `critical_modules`: CircuitLoRA fills these
    rank_pattern: dict[str, int] = opt(factory=dict, cli=False)
    alpha_pattern: dict[str, int] = opt(factory=dict, cli=False)
    lr_critical: float | None = opt(None, cli=False)
    critical_modules: list[str] = opt(factory=list, cli=False)


@dataclass
class FinetuneConfig:
    model: str = opt("pythia-mini", "zoo name, local HF directory, .gguf file or hub id")
    task: str = opt("add_sub", "task name, several separated by commas (trained in turn), or 'all' (one run each)")
    method: str = opt("full", "fine-tuning method", choices=("full", "lora", "adalora"))
    steps: int = opt(400, "optimiser steps", min=1)
    batch_size: int = opt(64, "examples per step", min=1)
    lr: float | None = opt(None, "learning rate (default 5e-4 full, 4e-3 LoRA)")
    weight_decay: float = opt(0.01, "AdamW weight decay")
    lora: LoRAOptions = opt(factory=LoRAOptions)
    n_train: int = opt(4000, "train examples, at most (small splits give all they have)", min=1)
    n_eval: int = opt(200, "test examples per evaluation", min=1)
    eval_every: int = opt(100, "steps between evaluations", min=1)
    checkpoint_every: int = opt(100, "steps between checkpoints", min=1)
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str | None = opt(None, "run directory (checkpoints, metrics); `interp finetune` writes runs/finetune by "
                                  "default, the API nothing")
    dtype: str = dtype_field()  # LoRA adapters stay float32
    device_map: str | None = device_map_field()

    def validate(self) -> None:
        """Fail on bad settings before any model is loaded."""
        from .loading import check_device_map, torch_dtype
        from .tasks import trainable

        for t in self.tasks():
            trainable(t)
        check_fields(self)
        torch_dtype(self.dtype)
        check_device_map(self.device_map)
        if self.method != "full" and (low := min([self.lora.r, *self.lora.rank_pattern.values()])) < 1:
            raise InterpError(f"LoRA rank must be >= 1, got {low}")
        for name, value in (("lr", self.lr), ("lr-critical", self.lora.lr_critical)):
            if value is not None:
                check_number(name, value)
        check_number("weight-decay", self.weight_decay, inclusive=True)

    def tasks(self) -> list[str]:
        """`task` names one task, or several separated by commas (trained one per step, in turn)."""
        return [t.strip() for t in self.task.split(",")]

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (5e-4 if self.method == "full" else 4e-3)


@dataclass
class FinetuneResult:
    model: Any
    tokenizer: Any
    history: list[dict]
    accuracy_before: float
    accuracy_after: float
    out: Path | None = None


def target_modules(cfg: FinetuneConfig, model) -> list[str]:
    """The modules LoRA adapts: the config's, or every attention and MLP projection of the model's family."""
    from .families import peft_targets

    return list(cfg.lora.target_modules) or peft_targets(model)


def peft_config(cfg: FinetuneConfig, model):
    """LoRA (with any rank/alpha patterns) or AdaLoRA, whose final budget is rank `lora_r` (starting at 1.5x)."""
    from peft import AdaLoraConfig, LoraConfig

    from .families import outside_blocks

    targets = target_modules(cfg, model)
    exclude = outside_blocks(model, targets) or None
    r = cfg.lora.r
    alpha = cfg.lora.alpha or 2 * r
    if cfg.method == "adalora":
        return AdaLoraConfig(init_r=max(r + 1, round(1.5 * r)), target_r=r, lora_alpha=alpha,
                             target_modules=targets, exclude_modules=exclude, lora_dropout=0.0, total_step=cfg.steps,
                             tinit=cfg.steps // 10, tfinal=cfg.steps // 5, deltaT=max(1, cfg.steps // 40))
    return LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, exclude_modules=exclude, lora_dropout=0.0,
                      bias="none", rank_pattern=dict(cfg.lora.rank_pattern), alpha_pattern=dict(cfg.lora.alpha_pattern))


def prepare_model(model, cfg: FinetuneConfig):
    """Wrap `model` for the chosen method: LoRA / AdaLoRA adapters via PEFT, or all parameters trainable."""
    cfg.validate()
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config(cfg, model))


def param_groups(model, cfg: FinetuneConfig) -> list[dict]:
    """One group, or two when critical modules get their own learning rate (`lr_scale` keeps the schedule)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lora = cfg.lora
    if lora.lr_critical is None or not lora.critical_modules:
        return [{"params": [p for _, p in params], "lr_scale": 1.0}]
    critical = lambda n: any(f"{m}." in n for m in lora.critical_modules)
    return [{"params": [p for n, p in params if not critical(n)], "lr_scale": 1.0},
            {"params": [p for n, p in params if critical(n)], "lr_scale": lora.lr_critical / cfg.learning_rate()}]


def lr_at(cfg: FinetuneConfig, step: int) -> float:
    """Linear warm-up over the first 5% of steps, then linear decay to zero (a pure function of step,
    so a resumed run follows the same schedule)."""
    warmup = max(1, cfg.steps // 20)
    if step < warmup:
        return cfg.learning_rate() * (step + 1) / warmup
    return cfg.learning_rate() * max(0.0, (cfg.steps - step) / (cfg.steps - warmup))


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of batch `step`: consecutive slices of per-epoch seeded permutations."""
    start = step * batch_size
    idx = []
    while len(idx) < batch_size:
        epoch, offset = divmod(start + len(idx), n)
        perm = torch.randperm(n, generator=torch_generator(seed, "finetune/order", epoch))
        idx.extend(perm[offset : offset + batch_size - len(idx)].tolist())
    return torch.tensor(idx)


def encode_train(tokenizer, examples, diffusion: bool, stop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (prompt, then the answer or its `<mask>`s) and per-position answer targets (interp/answers.py)."""
    from .answers import encode

    return encode(tokenizer, [e.clean for e in examples], [e.label for e in examples], diffusion, stop)


def stops(tokenizer, diffusion: bool) -> bool:
    """Whether fine-tuning also targets end-of-sequence after the answer: where a subword tokenizer lets the model
    run on into the answer's last word (greedy " 7" then "0" is the wrong answer " 70"), it must learn to stop.
    A word-level tokenizer's answer is whole, and a diffusion answer has a fixed length."""
    from .answers import subword

    return not diffusion and tokenizer.eos_token_id is not None and subword(tokenizer)


def answer_loss(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from .answers import answer_ce

    return answer_ce(model(input_ids=inputs).logits, targets)


def finetune(cfg: FinetuneConfig, loaded=None, resume: bool = True, overwrite: bool = False) -> FinetuneResult:
    """Fine-tune `cfg.model` (or an already loaded model) on `cfg.task`; returns the tuned model. With `cfg.out`
    the run is written there in place (interp/rundir.py): `resume` continues a stopped run or reuses a finished
    one with the same options (more steps extend it); `overwrite` starts again over one of ours."""
    from .loading import load_model
    from .rundir import RunDir

    cfg.validate()
    out = Path(cfg.out) if cfg.out else None
    run = RunDir(out, "finetune", atomic=False) if out else None
    if run:
        run.check(resume, overwrite, reuse_finished=resume)
    loaded = loaded or load_model(cfg.model, bridge=False, dtype=cfg.dtype, device_map=cfg.device_map)
    diffusion = loaded.is_diffusion
    tok = loaded.tokenizer
    tasks = cfg.tasks()
    stop = stops(tok, diffusion)
    data = [encode_train(tok, make_examples(t, "train", cfg.n_train, cfg.seed, at_most=True, tokenizer=tok), diffusion,
                         stop) for t in tasks]
    test = [e for t in tasks for e in make_examples(t, "test", cfg.n_eval, 0, tokenizer=tok)]
    manual_seed(cfg.seed, "finetune/init")  # adapter weights, diffusion masks
    acc_before = accuracy(loaded.model, tok, test, diffusion)
    model = prepare_model(loaded.model, cfg)
    groups = param_groups(model, cfg)
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate(), weight_decay=cfg.weight_decay)
    with run.writing(resume, overwrite, reuse_finished=resume) if run else nullcontext():
        history = _train(cfg, model, tok, opt, data, test, diffusion, out)
        model.eval()
        acc_after = history[-1]["accuracy"] if history else accuracy(model, tok, test, diffusion)
        if out:
            (out / "metrics.json").write_text(json.dumps(
                {"task": cfg.task, "method": cfg.method, "accuracy_before": acc_before, "accuracy_after": acc_after,
                 "history": history}, indent=2))
    return FinetuneResult(model, tok, history, acc_before, acc_after, out)


def _resume_point(cfg: FinetuneConfig, model, opt, out: Path | None) -> tuple[int, list[dict]]:
    """(first step, history so far): from `out/state.pt` when `out` holds a run of these options."""
    if not out or not (out / "state.pt").exists():
        return 0, []
    saved = json.loads((out / "config.json").read_text())
    # a moved or lengthened run still resumes
    if config_changes(saved, asdict(cfg), asdict(FinetuneConfig()), ignore=("steps", "out")):
        raise InterpError(f"{out} holds a different fine-tuning run; pass another --out or --overwrite")
    start = load_checkpoint(out / "state.pt", model, opt)
    history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
    return start, history


def _train(cfg: FinetuneConfig, model, tok, opt, data, test, diffusion: bool, out: Path | None) -> list[dict]:
    """The loop: from the resume point to `cfg.steps`, checkpoints every `checkpoint_every` steps, at the end
    and on Ctrl-C (which then raises KeyboardInterrupt). Returns the evaluation history."""
    start, history = _resume_point(cfg, model, opt, out)
    if out:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    params = [p for g in opt.param_groups for p in g["params"]]
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"finetune {cfg.method} {cfg.task}")
    with deferred_interrupt() as interrupted:
        for step in bar:
            model.train()
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step) * group["lr_scale"]
            inputs, targets = data[step % len(data)]  # several tasks: one per step, in turn
            idx = batch_indices(len(inputs), cfg.batch_size, cfg.seed, step // len(data))
            loss = answer_loss(model, inputs[idx], targets[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if cfg.method == "adalora":
                model.base_model.update_and_allocate(step)  # AdaLoRA's rank budget, after the step, before zero_grad
            opt.zero_grad(set_to_none=True)
            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.steps:
                acc = accuracy(model, tok, test, diffusion)
                history.append({"step": done, "loss": round(loss.item(), 5), "accuracy": acc})
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}")
            stop = interrupted()
            if out and (stop or done % cfg.checkpoint_every == 0 or done == cfg.steps):
                _checkpoint(cfg, model, tok, opt, out, done, history)
            if stop:
                raise KeyboardInterrupt
    return history


def _checkpoint(cfg: FinetuneConfig, model, tok, opt, out: Path, done: int, history: list[dict]) -> None:
    ckpt = out / "checkpoints" / f"step-{done}"
    if ckpt.exists():
        shutil.rmtree(ckpt)  # inside our own run directory
    model.save_pretrained(ckpt)
    if cfg.method == "full":
        tok.save_pretrained(ckpt)  # a full checkpoint is then a model directory any command loads
    save_checkpoint(out / "state.pt", model, opt, done)
    (out / "history.json").write_text(json.dumps(history, indent=2))


def checkpoints(run: Path) -> list[tuple[int, Path | None]]:
    """(step, directory) for the base model (None) and every saved checkpoint, in step order."""
    found = [(int(p.name.split("-")[1]), p) for p in (run / "checkpoints").glob("step-*") if p.name[5:].isdigit()]
    return [(0, None)] + sorted(found)


def load_at(model: str, checkpoint: Path | None, method: str, device: str = "cpu", dtype: str = "float32",
            device_map: str | None = None, hooks_for_edges: bool = False):
    """The model at a fine-tuning checkpoint (None: the base model; a LoRA adapter is merged), hooked."""
    from .loading import load_model, make_bridge

    loaded = load_model(model, bridge=False, device=device, dtype=dtype, device_map=device_map)
    if checkpoint is not None:
        if method == "lora":
            from peft import PeftModel

            loaded.model = PeftModel.from_pretrained(loaded.model, checkpoint).merge_and_unload()
        else:
            loaded.model = type(loaded.model).from_pretrained(checkpoint, dtype=loaded.model.dtype).to(device).eval()
    loaded.bridge = make_bridge(loaded, hooks_for_edges=hooks_for_edges, device=device)
    return loaded
