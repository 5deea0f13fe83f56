"""CircuitLoRA's rank allocation (docs/methods.md §1, Algorithm 1 steps 2-5): per-layer edge change between two
circuits -> critical layers -> PEFT `rank_pattern` / `alpha_pattern`, checked against the adapted model.

Critical layers are chosen among the model's blocks (0..n_layers-1); with `count_by="target"` the change
that flows into `logits` (layer n_layers) has no block to go to and is left out of the choice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from interp.errors import InterpError

from .circuit import Circuit
from .comparison import layer_change


def critical_layers(change: dict[int, float], n_layers: int, rule: str = "topk:1") -> list[int]:
    """`topk:N` (the N layers with the largest change), `mean+std` (change above mean + one std), or
    `layers:I,J` (those layers, whatever their change: a control for the circuits' choice)."""
    blocks = {l: c for l, c in change.items() if l < n_layers}
    if rule.startswith("layers:"):
        try:
            chosen = sorted({int(x) for x in rule[7:].split(",")})
        except ValueError:
            chosen = []
        if not chosen or not all(0 <= l < n_layers for l in chosen):
            raise InterpError(f"critical-layer rule {rule!r}: layers must be integers in 0..{n_layers - 1}")
        return chosen
    if rule.startswith("topk:"):
        try:
            k = int(rule[5:])
        except ValueError:
            k = 0
        if not 1 <= k <= n_layers:
            raise InterpError(f"critical-layer rule {rule!r}: N must be an integer in 1..{n_layers}")
        chosen = sorted(sorted(blocks, key=lambda l: -blocks[l])[:k])
    elif rule == "mean+std":
        vals = list(blocks.values())
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        chosen = [l for l, c in blocks.items() if c > mean + std]
    else:
        raise InterpError(f"unknown critical-layer rule {rule!r}; valid: topk:N, mean+std, layers:I,J")
    if not chosen or all(blocks[l] == 0 for l in chosen):
        raise InterpError(f"critical-layer rule {rule!r} selects no layer with any edge change")
    return chosen


def adapted_modules(model, target_modules: list[str]) -> dict[str, int]:
    """Module name -> block index for every linear module LoRA would adapt (PEFT's rule: the name is a target
    or ends with `.target`) inside the family's blocks (so not, say, a vision tower's layers)."""
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

    from interp.families import family_of

    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    block = re.compile(rf"(?:^|\.){re.escape(family_of(root.config).blocks)}\.(\d+)\.")  # also under a PEFT prefix
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, Conv1D)) and any(name == t or name.endswith("." + t)
                                                                   for t in target_modules):
            m = block.search(name)
            if m:
                found[name] = int(m.group(1))
    if not found:
        raise InterpError(f"no linear module named {', '.join(target_modules)} inside numbered blocks")
    return found


@dataclass
class Allocation:
    layer_change: dict[int, float]
    critical: list[int]
    rule: str
    count_by: str
    r_other: int
    r_critical: int
    alpha_other: int
    alpha_critical: int
    ranks: dict[str, int] = field(default_factory=dict)  # module name -> intended rank
    alphas: dict[str, int] = field(default_factory=dict)
    critical_modules: list[str] = field(default_factory=list)

    def table(self) -> list[dict]:
        n = max(self.layer_change) if self.layer_change else 0
        return [{"layer": l, "edge_change": c, "critical": l in self.critical,
                 "rank": self.r_critical if l in self.critical else (self.r_other if l < n else None)}
                for l, c in sorted(self.layer_change.items())]

    def to_dict(self) -> dict:
        return {"critical_layers": self.critical, "rule": self.rule, "count_by": self.count_by,
                "r_other": self.r_other, "r_critical": self.r_critical, "alpha_other": self.alpha_other,
                "alpha_critical": self.alpha_critical, "layers": self.table(), "rank_pattern": self.ranks,
                "alpha_pattern": self.alphas}


def allocate(before: Circuit, after: Circuit, model, target_modules: list[str], r_other: int, r_critical: int,
             rule: str = "topk:1", count_by: str = "source", alpha_other: int | None = None,
             alpha_critical: int | None = None) -> Allocation:
    if min(r_other, r_critical) < 1:
        raise InterpError(f"ranks must be >= 1 (got r_other {r_other}, r_critical {r_critical})")
    n_layers = before.graph.n_layers
    change = layer_change(before, after, count_by)
    critical = critical_layers(change, n_layers, rule)
    a_o, a_c = alpha_other or 2 * r_other, alpha_critical or 2 * r_critical
    modules = adapted_modules(model, target_modules)
    ranks = {n: r_critical if l in critical else r_other for n, l in modules.items()}
    alphas = {n: a_c if l in critical else a_o for n, l in modules.items()}
    return Allocation(change, critical, rule, count_by, r_other, r_critical, a_o, a_c, ranks, alphas,
                      [n for n, l in modules.items() if l in critical])


def check_ranks(peft_model, ranks: dict[str, int], adapter: str = "default") -> None:
    """Every intended module is adapted with its intended rank (PEFT ignores pattern keys that match nothing)."""
    got = {}
    for name, module in peft_model.named_modules():
        r = getattr(module, "r", None)
        if isinstance(r, dict) and adapter in r and hasattr(module, "lora_A"):
            got[name.split("base_model.model.", 1)[-1]] = r[adapter]
    missing = [n for n in ranks if n not in got]
    wrong = [f"{n}: {got[n]} (wanted {r})" for n, r in ranks.items() if n in got and got[n] != r]
    if missing or wrong:
        raise InterpError("LoRA allocation not applied: " + "; ".join(
            ([f"no adapter on {', '.join(missing[:3])}"] if missing else []) + wrong[:3]))


def layer_sizes(model, target_modules: list[str]) -> dict[int, int]:
    """Per block: the summed (in + out) features of its adapted linear modules, so LoRA of rank r there has
    r times that many parameters."""
    modules = dict(model.named_modules())
    sizes: dict[int, int] = {}
    for n, l in adapted_modules(model, target_modules).items():
        sizes[l] = sizes.get(l, 0) + sum(modules[n].weight.shape)
    return sizes


def lora_parameters(sizes: dict[int, int], rank_of_layer) -> int:
    return sum(size * rank_of_layer(l) for l, size in sizes.items())


def match_params(sizes: dict[int, int], critical: list[int], r_uniform: int, ratio: float = 4.0) -> tuple[int, int]:
    """(r_other, r_critical) whose LoRA parameters equal uniform rank `r_uniform`'s within 1%, with r_critical
    as close to `ratio` x r_other as that allows."""
    target = lora_parameters(sizes, lambda l: r_uniform)
    best = None
    for r_o in range(1, r_uniform + 1):
        for r_c in range(r_o, 8 * r_uniform + 1):
            n = lora_parameters(sizes, lambda l: r_c if l in critical else r_o)
            if abs(n - target) <= 0.01 * target:
                score = abs(math.log(r_c / r_o / ratio))
                if best is None or score < best[0]:
                    best = (score, r_o, r_c)
    if best is None:
        raise InterpError(f"no integer ranks match uniform rank {r_uniform}'s parameters within 1%")
    return best[1], best[2]
