"""`track`: fine-tune with the workbench's loop, then discover the circuit at the base model (step 0) and at
every checkpoint (a LoRA adapter is merged into the base weights first), and compare them.

Layout of `out/`: `finetune/` (the fine-tuning run, resumable), `circuits/step-N/circuit.{json,html}`, and
`track.json` (per checkpoint: accuracy, faithfulness, node and edge counts, robustness over disjoint splits;
comparisons of consecutive checkpoints and of each checkpoint with the base). A checkpoint whose circuit
file exists is not recomputed, so an interrupted track resumes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.finetune import checkpoints, load_at
from interp.options import check_fields, opt

from .circuit import Circuit
from .comparison import compare, robustness
from .discovery import HEAD_USE, DiscoverConfig, discover, split_circuits, write_circuit


@dataclass
class TrackConfig:
    model: str = opt("pythia-mini", "zoo name, local HF directory, .gguf file or hub id")
    task: str = opt("add_sub", "task family")
    method: str = opt("full", "fine-tuning method", choices=("full", "lora"))
    steps: int = opt(400, "fine-tuning steps", min=1)
    checkpoint_every: int = opt(100, "steps between checkpoints (each gets a circuit)", min=1)
    lr: float | None = opt(None, "fine-tuning learning rate (default: 5e-4 full, 4e-3 LoRA)")
    lora_r: int = opt(8, "LoRA rank", min=1)
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    splits: int = opt(3, "robustness: disjoint splits per checkpoint (0: skip)")
    count_by: str = opt("source", "count each edge's change toward its source or target layer",
                        choices=("source", "target"))
    # the attribution options shown: the rest are the track's own (model, task, seed) or discover's defaults
    discover: DiscoverConfig = opt(factory=lambda: DiscoverConfig(curve=()), cli={
        "method": "attribution", "metric": None, "ig_steps": None, "n": None, "n_eval": None, "top_percent": None,
        "device": None})
    out: str | None = opt(None, "run directory (default runs/track/<model>-<task>-<method>)")

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs/track") / f"{Path(self.model).name}-{self.task}-{self.method}"


def track(cfg: TrackConfig, show_progress: bool = True, overwrite: bool = False) -> dict:
    """Fine-tune, then the circuit at every checkpoint, in place in `cfg.out` (what a stopped or finished
    track there made is reused; `overwrite` starts again over it)."""
    from interp.loading import load_model
    from interp.rundir import RunDir

    check_fields(cfg)
    if cfg.splits == 1 or cfg.splits < 0:
        raise InterpError("--splits must be 0 (skip robustness) or >= 2")
    dcfg = replace(cfg.discover, model=cfg.model, task=cfg.task, seed=cfg.seed)
    dcfg.validate()
    _finetune_config(cfg, cfg.run_dir()).validate()
    run = RunDir(cfg.run_dir(), "track", atomic=False)
    run.check(resume=True, overwrite=overwrite, reuse_finished=True)
    load_model(cfg.model, bridge=False).require_head(HEAD_USE)  # refused before fine-tuning, not after it
    with run.writing(resume=True, overwrite=overwrite, reuse_finished=True) as out:
        return _track(cfg, dcfg, out, show_progress)


def _finetune_config(cfg: TrackConfig, out: Path):
    from interp.finetune import FinetuneConfig, LoRAOptions

    return FinetuneConfig(model=cfg.model, task=cfg.task, method=cfg.method, steps=cfg.steps, lr=cfg.lr,
                          lora=LoRAOptions(r=cfg.lora_r), checkpoint_every=cfg.checkpoint_every, eval_every=cfg.checkpoint_every,
                          seed=cfg.seed, out=str(out / "finetune"))


def _track(cfg: TrackConfig, dcfg, out: Path, show_progress: bool) -> dict:
    from interp.finetune import finetune

    finetune(_finetune_config(cfg, out))
    rows, circuits = [], []
    for step, ckpt in tqdm(checkpoints(out / "finetune"), desc="circuits at checkpoints", disable=not show_progress):
        path = out / "circuits" / f"step-{step}" / "circuit.json"
        if path.exists():
            circuit = Circuit.load(path)
        else:
            loaded = load_at(cfg.model, ckpt, cfg.method, dcfg.device, hooks_for_edges=True)
            circuit = discover(dcfg, loaded).circuit
            circuit.info.update(step=step, finetune_method=cfg.method)
            if cfg.splits:
                circuit.info["robustness"] = robustness(split_circuits(dcfg, cfg.splits, loaded))
            write_circuit(circuit, path.parent)
        ev = circuit.info["evaluation"]
        rows.append({"step": step, "accuracy": ev["accuracy_full_model"], "faithfulness": ev["faithfulness"],
                     "logit_diff_recovered": ev["logit_diff_recovered"], "circuit_accuracy": ev["accuracy"],
                     "nodes": len(circuit.node_names), "edges": len(circuit.edge_names),
                     "robustness_edge_jaccard": circuit.info.get("robustness", {}).get("edge_jaccard")})
        circuits.append(circuit)
    summary = {"config": asdict(cfg), "checkpoints": rows,
               "consecutive": [{"from": a["step"], "to": b["step"], **compare(x, y, cfg.count_by)}
                               for a, b, x, y in zip(rows, rows[1:], circuits, circuits[1:])],
               "vs_base": [{"step": r["step"], **compare(circuits[0], c, cfg.count_by)} for r, c in zip(rows[1:], circuits[1:])]}
    (out / "track.json").write_text(json.dumps(summary, indent=1))
    return summary
