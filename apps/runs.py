"""What the app can show: the SAE runs, circuits and CircuitLoRA allocations under one runs directory.

Every path the app opens goes through `RunsDir.path`, which refuses anything outside the directory (the app's
endpoints take paths as strings, and a caller can send any string). The scan opens only regular files inside
it: a FIFO or device named *.json would block or never end, a link out would show what lies outside. A circuit
is a JSON file whose "format" field says so; files over MAX_JSON_BYTES are not read.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from circuits.circuit import FORMAT as CIRCUIT_FORMAT
from interp.errors import InterpError

SKIP = {"checkpoints", "__pycache__", "node_modules", "site-packages"}
# a circuit file takes about 85 bytes an edge (SmolLM2-135M's 70,651 edges: 5.9 MB), so the bound admits
# circuits of about 800,000 edges, and keeps one stray large JSON file from costing each scan seconds and GBs
MAX_JSON_BYTES = 64 << 20
NOT_CIRCUITS = {"cfg.json", "features.json", "config.json"}  # an SAE's and a run's own files


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
    orders: list[str]  # `interp dlm order` runs' order.json
    steerings: list[str]  # `interp dlm steer-eval` runs' steering.json


class RunsDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InterpError(f"runs directory {root} does not exist")
        # rel path -> (the file's identity, its circuit entry or None): the `runs` endpoint rescans on every
        # page load, and parsing each JSON file again each time would be the slow part
        self._parsed: dict[str, tuple[tuple, CircuitEntry | None]] = {}

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
        """SAEs (with feature statistics), circuits, allocations, unlearning selections, decoding-order and
        steering runs, newest first."""
        saes, circuits, allocations, selections, orders, steerings = [], [], [], [], [], []
        for d, files in self._walk():
            if "cfg.json" in files and "features.json" in files and d.parent.name == "saes":
                saes.append(self._sae(d))
            for f in files:
                if f == "allocation.json":
                    allocations.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f == "selection.json":
                    selections.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f == "order.json":
                    orders.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f == "steering.json":
                    steerings.append(((d / f).stat().st_mtime, self.rel(d / f)))
                elif f not in NOT_CIRCUITS and (entry := self._circuit(d / f)):
                    circuits.append(entry)
        saes.sort(key=lambda e: -e.mtime)
        circuits.sort(key=lambda e: (-e.mtime, e.path))
        newest = lambda found: [p for _, p in sorted(found, reverse=True)]
        return Found(saes, circuits, newest(allocations), newest(selections), newest(orders), newest(steerings))

    def _circuit(self, p: Path) -> CircuitEntry | None:
        """The circuit in JSON file `p`, or None when its "format" field names no circuit (or it is no JSON)."""
        try:
            st, rel = p.stat(), self.rel(p)
        except OSError:  # gone since the walk saw it
            return None
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)  # a rewrite (atomic: a new inode) changes one of these
        if rel in self._parsed and self._parsed[rel][0] == seen:
            return self._parsed[rel][1]
        info, entry = _read_json(p), None
        if isinstance(info, dict) and info.get("format") == CIRCUIT_FORMAT:
            entry = CircuitEntry(rel, str(info.get("model", "?")), str(info.get("task", "?")), st.st_mtime)
        self._parsed[rel] = (seen, entry)
        return entry

    def _sae(self, d: Path) -> SAEEntry:
        cfg = json.loads((d / "cfg.json").read_text())
        run_cfg = d.parent.parent / "config.json"
        model = json.loads(run_cfg.read_text()).get("model", "?") if self._regular(run_cfg) else "?"
        meta = cfg.get("metadata") or {}
        hook = meta.get("hook_name") or cfg.get("hook_name", "?")
        # an inference form without k (BatchTopK saves as JumpReLU) keeps it in its training details
        k = cfg.get("k") or (meta.get("training_architecture_details") or {}).get("k") or 0
        return SAEEntry(self.rel(d), model, hook, int(k), int(cfg["d_sae"]),
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


def _read_json(p: Path):
    """The JSON value in regular file `p`; None when it is not one, is over MAX_JSON_BYTES, or does not parse."""
    # non-blocking, then checked on the open file: a FIFO put there since the walk looked cannot block the scan
    nonblocking = lambda path, flags: os.open(path, flags | os.O_NONBLOCK)
    try:
        with open(p, "rb", opener=nonblocking) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_JSON_BYTES:
                return None
            data = fh.read(MAX_JSON_BYTES + 1)  # the file may have grown since fstat
    except OSError:
        return None
    if len(data) > MAX_JSON_BYTES:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        return None
