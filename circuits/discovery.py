"""`discover`: attribute every edge on a task's circuit split, keep the top edges, prune, and evaluate the
circuit (and a faithfulness curve over the share of edges kept) on the task's held-out test split."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.errors import InterpError
from interp.options import check_fields, device_map_field, dtype_field, opt, trust_remote_code_field
from interp.tasks import get_task

from .attribution import ATTRIBUTION_METHODS, AttributionConfig, attribute
from .circuit import Circuit
from .data import METRICS, task_batches
from .evaluate import evaluate_masks
from .graph import Graph
from .layout import Layout

HEAD_USE = "circuit discovery (KL and logit difference at the answer)"

CURVE = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


@dataclass
class DiscoverConfig:
    model: str = opt("pythia-mini", "zoo name, local HF directory, .gguf file or hub id")
    task: str = opt("add_sub", "task family (see `interp tasks list`)")
    method: str = opt("eap-ig", "edge attribution method", choices=ATTRIBUTION_METHODS, flag="attribution")
    metric: str = opt("kl", "kl (whole vocabulary, answer positions), logit_diff or prob_diff", choices=METRICS)
    ig_steps: int = opt(5, "EAP-IG interpolation steps", min=1)
    n: int = opt(200, "attribution examples (circuit split)", min=1)
    n_eval: int = opt(200, "evaluation examples (test split)", min=1)
    batch_size: int = opt(50, "examples per forward pass", min=1)
    position_chunk: int = opt(0, "positions whose source outputs attribution holds at once, for long contexts "
                                 "(0: the whole context; each chunk costs its own passes)", min=0)
    seed: int = opt(0, "seed of the examples drawn", min=0)
    top_percent: float | None = opt(5.0, "share of edges kept, in percent")
    top_n: int | None = opt(None, "keep this many edges instead", min=1)
    threshold: float | None = opt(None, "keep edges with |score| >= this instead")
    curve: tuple[float, ...] = opt(CURVE, cli=False)  # percent of edges kept; () for none (--no-curve)
    device: str = opt("cpu", "where the model runs")
    dtype: str = dtype_field()
    device_map: str | None = device_map_field()
    trust_remote_code: bool = trust_remote_code_field()

    def rule(self) -> dict:
        """The selection rule: top-n or threshold when given, else top-percent."""
        if self.top_n is not None:
            return {"top_n": self.top_n}
        if self.threshold is not None:
            return {"threshold": self.threshold}
        return {"top_percent": self.top_percent if self.top_percent is not None else 5.0}

    def attribution(self) -> AttributionConfig:
        return AttributionConfig(self.method, self.metric, self.ig_steps, position_chunk=self.position_chunk)

    def validate(self) -> None:
        from interp.loading import check_device_map, torch_dtype

        if get_task(self.task).range_answer and self.metric == "logit_diff":
            raise InterpError(f"task {self.task!r} has a range of right answers and no one answer token to take a "
                              "logit difference of; use --metric prob_diff or kl")
        check_fields(self)
        torch_dtype(self.dtype)
        check_device_map(self.device_map)
        self.attribution().validate()
        if sum(x is not None for x in (self.top_n, self.threshold)) > 1:
            raise InterpError("give at most one of --top-n and --threshold")
        if self.top_percent is not None and not 0 < self.top_percent <= 100:
            raise InterpError(f"--top-percent must be in (0, 100], got {self.top_percent}")
        if any(not 0 < p <= 100 for p in self.curve):
            raise InterpError("curve shares must be percentages in (0, 100]")


@dataclass
class DiscoverResult:
    circuit: Circuit
    evaluation: dict
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def discover(cfg: DiscoverConfig, loaded=None, show_progress: bool = False) -> DiscoverResult:
    """Discover and evaluate a circuit; `loaded` (from `load_model(..., hooks_for_edges=True)`) skips loading."""
    from interp.loading import load_model
    from interp.memory import peak_memory

    cfg.validate()
    loaded = loaded or load_model(cfg.model, hooks_for_edges=True, device=cfg.device, dtype=cfg.dtype,
                                  device_map=cfg.device_map, trust_remote_code=cfg.trust_remote_code)
    loaded.require_head(HEAD_USE)
    graph = Graph.from_model(loaded.model)
    layout = Layout(graph)
    tok, diffusion = loaded.tokenizer, loaded.is_diffusion
    batches = task_batches(tok, cfg.task, "circuit", cfg.n, cfg.seed, cfg.batch_size, diffusion)
    start = time.perf_counter()
    scores = attribute(loaded.bridge, layout, batches, cfg.attribution(), show_progress)
    seconds = time.perf_counter() - start
    info = {"model": cfg.model, "task": cfg.task, "method": cfg.method, "metric": cfg.metric,
            "ig_steps": cfg.ig_steps if cfg.method == "eap-ig" else None, "rule": cfg.rule(),
            "n_examples": sum(len(b) for b in batches), "attribution_seconds": round(seconds, 3)}
    circuit = Circuit.from_scores(graph, scores, info, **cfg.rule())
    curve_circuits = [circuit.with_rule(top_percent=p) for p in cfg.curve]
    eval_batches = task_batches(tok, cfg.task, "test", cfg.n_eval, cfg.seed, cfg.batch_size, diffusion)
    results = evaluate_masks(loaded.bridge, layout, eval_batches, [c.in_graph for c in [circuit] + curve_circuits],
                             show_progress)
    evaluation, curve = results[0], [{"percent": p, **r} for p, r in zip(cfg.curve, results[1:])]
    circuit.info.update(faithfulness=evaluation["faithfulness"], evaluation=evaluation, faithfulness_curve=curve,
                        config=asdict(cfg), **peak_memory())
    return DiscoverResult(circuit, evaluation, curve, seconds)


def write_circuit(circuit: Circuit, out: str | Path) -> Path:
    """`out/circuit.json` and `out/circuit.html`."""
    from .draw import save_picture

    out = Path(out)
    path = circuit.save(out / "circuit.json")
    save_picture(circuit, out / "circuit.html")
    return path


def split_circuits(cfg: DiscoverConfig, splits: int = 3, loaded=None, show_progress: bool = False) -> list[Circuit]:
    """Circuits found on `splits` disjoint sets of `cfg.n` circuit-split examples (attribution and selection only)."""
    from interp.loading import load_model
    from interp.tasks import make_examples

    cfg.validate()
    if splits < 2:
        raise InterpError("--splits must be >= 2")
    loaded = loaded or load_model(cfg.model, hooks_for_edges=True, device=cfg.device, dtype=cfg.dtype,
                                  device_map=cfg.device_map, trust_remote_code=cfg.trust_remote_code)
    loaded.require_head(HEAD_USE)
    graph = Graph.from_model(loaded.model)
    layout = Layout(graph)
    examples = make_examples(cfg.task, "circuit", cfg.n * splits, cfg.seed, tokenizer=loaded.tokenizer, aligned=True)
    circuits = []
    for i in range(splits):
        batches = task_batches(loaded.tokenizer, cfg.task, batch_size=cfg.batch_size, diffusion=loaded.is_diffusion,
                               examples=examples[i * cfg.n : (i + 1) * cfg.n])
        scores = attribute(loaded.bridge, layout, batches, cfg.attribution(), show_progress)
        circuits.append(Circuit.from_scores(graph, scores, {"split": i}, **cfg.rule()))
    return circuits
