"""The model zoo: small models shipped inside the package, each with the seeded recipe that made it.

`train_zoo_model(name)` (CLI: `interp zoo train NAME`) reruns the recipe: pretraining on the generated
corpus, then the per-task accuracy report, written to a temporary directory and renamed into place.
Reruns on the same machine type give the same weights up to floating-point nondeterminism of threads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .architecture import ArchConfig
from .errors import InterpError
from .pretrain import PretrainConfig

ZOO_DIR = Path(__file__).parent / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str  # "ar" or "diffusion"
    description: str
    recipe: PretrainConfig

    @property
    def path(self) -> Path:
        return ZOO_DIR / self.name


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("pythia-mini", "ar", "GPT-NeoX (Pythia family), causal, next-token pretraining",
                 PretrainConfig(arch=ArchConfig(causal=True), objective="ar", steps=2400, in_format_share=0.001)),
        ZooEntry("mdlm-mini", "diffusion", "GPT-NeoX blocks with bidirectional attention, LLaDA masked-diffusion pretraining",
                 PretrainConfig(arch=ArchConfig(causal=False), objective="llada", steps=1500, in_format_share=0.001)),
    ]
}


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise InterpError(f"unknown zoo model {name!r}; zoo models: {', '.join(ZOO)}")
    return ZOO[name]


def read_report(name: str) -> dict:
    path = get_entry(name).path / "report.json"
    return json.loads(path.read_text()) if path.exists() else {}


def train_zoo_model(name: str, out: Path | None = None, resume: bool = True, eval_n: int = 200,
                    overwrite: bool = False) -> Path:
    """Run the zoo recipe for `name`; write the model directory `out` (default: the shipped location, which
    is a finished run of ours: replacing it needs `overwrite`)."""
    import torch

    from .evaluate import task_accuracy
    from .pretrain import pretrain
    from .rundir import RunDir
    from .tasks import ARITHMETIC
    from .tokenizer import load_tokenizer

    entry = get_entry(name)
    run = RunDir(Path(out) if out else entry.path, "zoo")
    resume = run.check(resume, overwrite) == "resume"
    with run.writing(resume, overwrite) as work:
        start = time.time()
        model, log = pretrain(entry.recipe, work, resume=resume)
        tok = load_tokenizer()
        diffusion = entry.kind == "diffusion"
        acc = {t: task_accuracy(model, tok, t, "test", eval_n, diffusion=diffusion) for t in ARITHMETIC}
        model.save_pretrained(work)
        tok.save_pretrained(work)
        report = {
            "name": name, "kind": entry.kind, "description": entry.description,
            "parameters": sum(p.numel() for p in model.parameters()),
            "accuracy": acc, "eval": {"split": "test", "n": eval_n, "seed": 0},
            "train_seconds": round(time.time() - start, 1), "torch_threads": torch.get_num_threads(),
            "loss_curve": log,
        }
        (work / "recipe.json").write_text(json.dumps(asdict(entry.recipe), indent=2))
        (work / "report.json").write_text(json.dumps(report, indent=2))
        (work / "checkpoint").unlink(missing_ok=True)
    return run.out
