"""The model zoo: small models shipped inside the package, each with the seeded recipe that made it.

`train_zoo_model(name)` (CLI: `interp zoo train NAME`) reruns the recipe: pretraining on the generated
corpus, then the per-task accuracy report, written to a temporary directory and renamed into place.
Reruns on the same machine type give the same weights up to floating-point nondeterminism of threads.
"""

from __future__ import annotations

import json
import shutil
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


def train_zoo_model(name: str, out: Path | None = None, resume: bool = True, eval_n: int = 200) -> Path:
    """Run the zoo recipe for `name`; write the model directory `out` (default: the shipped location)."""
    import torch

    from .evaluate import task_accuracy
    from .pretrain import pretrain
    from .tasks import TASKS
    from .tokenizer import load_tokenizer

    entry = get_entry(name)
    out = Path(out) if out else entry.path
    work = out.with_name(out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    model, log = pretrain(entry.recipe, work, resume=resume)
    tok = load_tokenizer()
    diffusion = entry.kind == "diffusion"
    acc = {t: task_accuracy(model, tok, t, "test", eval_n, diffusion=diffusion) for t in TASKS}
    final = work / "final"
    if final.exists():
        shutil.rmtree(final)
    model.save_pretrained(final)
    tok.save_pretrained(final)
    report = {
        "name": name, "kind": entry.kind, "description": entry.description,
        "parameters": sum(p.numel() for p in model.parameters()),
        "accuracy": acc, "eval": {"split": "test", "n": eval_n, "seed": 0},
        "train_seconds": round(time.time() - start, 1), "torch_threads": torch.get_num_threads(),
        "loss_curve": log,
    }
    (final / "recipe.json").write_text(json.dumps(asdict(entry.recipe), indent=2))
    (final / "report.json").write_text(json.dumps(report, indent=2))
    if out.exists():
        shutil.rmtree(out)
    final.rename(out)
    shutil.rmtree(work)
    return out
