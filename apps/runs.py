"""What the app can show: the SAE runs, circuits and CircuitLoRA allocations under one runs directory.

Every path the app opens goes through `RunsDir.path`, which refuses anything outside the directory (the app's
endpoints take paths as strings, and a caller can send any string). The scan opens only regular files inside
it: a FIFO or device named *.json would block or never end, a link out would show what lies outside.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from interp.errors import InterpError

SKIP = {"checkpoints", "__pycache__", "node_modules", "site-packages"}
CIRCUIT_MARK = b'"format": "interp.circuit/1"'


@dataclass
class SAEEntry:
    path: str  # relative to the runs directory
    model: str
    hook: str
    k: int
    d_sae: int
    mtime: float

    @property
    def label(self) -> str:
        return f"{self.model} · {self.hook} · k={self.k} · {self.d_sae} latents ({self.path})"


@dataclass
class CircuitEntry:
    path: str
    model: str
    task: str
    mtime: float

    @property
    def label(self) -> str:
        return f"{Path(self.model).name} · {self.task} · {self.path}"


@dataclass
class Found:
    saes: list[SAEEntry]
    circuits: list[CircuitEntry]
    allocations: list[str]
    selections: list[str]  # unlearning runs' selection.json


class RunsDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InterpError(f"runs directory {root} does not exist")

    def path(self, rel: str | Path) -> Path:
        """The file `rel` names inside the runs directory; anything resolving outside it is refused, and so is
        anything there that is neither a directory nor a regular file (reading a FIFO blocks)."""
        if not isinstance(rel, (str, Path)):
            raise InterpError("no run path given")
        if "\0" in str(rel):  # the OS cannot take it; Path would raise a bare ValueError
            raise InterpError("a run path cannot contain a NUL byte")
        p = (self.root / rel).resolve()
        if not self._inside(p):
            raise InterpError(f"{rel} is outside the runs directory {self.root}")
        try:
            mode = p.stat().st_mode
        except OSError:
            return p  # missing: the caller says what it expected there
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise InterpError(f"{rel} is not a regular file or a directory")
        return p

    def _inside(self, p: Path) -> bool:
        return p == self.root or self.root in p.parents

    def _regular(self, p: Path) -> bool:
        """A regular file inside the runs directory, following links."""
        try:
            return self._inside(p.resolve()) and stat.S_ISREG(p.stat().st_mode)
        except (OSError, RuntimeError):  # RuntimeError: a link loop
            return False

    def rel(self, p: Path) -> str:
        return p.resolve().relative_to(self.root).as_posix()

    def _walk(self):
        for dirpath, dirs, files in os.walk(self.root):
            # runs being written (.partial), hidden folders, venvs and adapter checkpoints hold nothing to show
            dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith((".", "venv")) and not d.endswith(".partial")]
            # the scan reads only .json files, and only regular ones inside the root
            yield Path(dirpath), [f for f in files if f.endswith(".json") and self._regular(Path(dirpath) / f)]

    def scan(self) -> Found:
        """SAEs (with feature statistics), circuits, allocations and unlearning selections, newest first."""
        saes, circuits, allocations, selections = [], [], [], []
        for d, files in self._walk():
            if "cfg.json" in files and "features.json" in files and d.parent.name == "saes":
                saes.append(self._sae(d))
            for f in files:
                if f == "allocation.json":
                    allocations.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f == "selection.json":
                    selections.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f.endswith(".json") and f not in ("cfg.json", "features.json", "config.json"):
                    with open(d / f, "rb") as fh:
                        head = fh.read(64)
                    if CIRCUIT_MARK in head:
                        info = json.loads((d / f).read_text())
                        circuits.append(CircuitEntry(self.rel(d / f), info.get("model", "?"), info.get("task", "?"),
                                                     (d / f).stat().st_mtime))
        saes.sort(key=lambda e: -e.mtime)
        circuits.sort(key=lambda e: (-e.mtime, e.path))
        newest = lambda found: [p for _, p in sorted(found, reverse=True)]
        return Found(saes, circuits, newest(allocations), newest(selections))

    def _sae(self, d: Path) -> SAEEntry:
        cfg = json.loads((d / "cfg.json").read_text())
        run_cfg = d.parent.parent / "config.json"
        model = json.loads(run_cfg.read_text()).get("model", "?") if self._regular(run_cfg) else "?"
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name", "?")
        return SAEEntry(self.rel(d), model, hook, int(cfg.get("k", 0)), int(cfg["d_sae"]),
                        (d / "features.json").stat().st_mtime)

    def model_name(self, sae_rel: str) -> str:
        """The model an SAE was trained on: a zoo name, or a model directory inside the runs directory."""
        from interp.zoo import ZOO

        run_cfg = self.path(sae_rel).parent.parent / "config.json"
        if not self._regular(run_cfg):
            raise InterpError(f"{sae_rel} has no run config.json naming its model")
        model = json.loads(run_cfg.read_text())["model"]
        if model in ZOO:
            return model
        return str(self.path(os.path.relpath(Path(model).resolve(), self.root)))
