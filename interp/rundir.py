"""Run directories: what a command may write to, and how.

A run directory carries a manifest (`interp-run.json`: kind, status, when, the command) that marks it as
made by the workbench. `--out` must be new, empty, or one of ours: a directory without a manifest is
someone's data and is never written into, and a finished run of ours is replaced only with `overwrite`.
While a run writes, `<out>.lock` names the process; a second run on the same `--out` stops at once.
Atomic runs write `<out>.partial` and rename it to `<out>` when complete; in-place runs (fine-tuning and
the experiments that nest other runs) write `<out>` itself and resume from what is there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import InterpError

MANIFEST = "interp-run.json"
FORMAT = "interp.run/1"


def read_manifest(path: Path) -> dict | None:
    """The manifest of directory `path`, or None when it has none (it is then not ours)."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        return None
    try:
        m = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InterpError(f"{file} is not a readable run manifest; the directory is left as it is") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InterpError(f"{file} is not an interp run manifest; the directory is left as it is")
    return m


def config_changes(saved: dict, now: dict, defaults: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The options in which a run's saved config and the asked-for one differ (compared as JSON, so tuples equal
    lists); an option the saved config lacks is newer than the run, which ran at its default."""
    saved, now, defaults = (json.loads(json.dumps(d, default=str)) for d in (saved, now, defaults))
    return sorted(k for k in set(saved) | set(now)
                  if k not in ignore and saved.get(k, defaults.get(k)) != now.get(k, defaults.get(k)))


@contextmanager
def replacing(path: Path):
    """Yield a temporary path beside `path` to write; it becomes `path` only when the block ends without error,
    so a kill leaves either the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def check_new_file(path: Path, overwrite: bool = False) -> None:
    """A single output file (a CSV, a JSON report): refused when it exists, unless `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise InterpError(f"{path} is a directory; give a file path")
    if path.exists() and not overwrite:
        raise InterpError(f"{path} exists; pass --overwrite to replace it, or choose another path")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunDir:
    out: Path
    kind: str  # what made it: "sae", "finetune", "unlearn", ...
    atomic: bool = True

    def __post_init__(self):
        self.out = Path(self.out)

    @property
    def work(self) -> Path:
        return self.out.with_name(self.out.name + ".partial") if self.atomic else self.out

    @property
    def lock_path(self) -> Path:
        return self.out.with_name(self.out.name + ".lock")

    def finished(self) -> bool:
        m = read_manifest(self.out) if self.out.is_dir() else None
        return bool(m and m.get("status") == "complete")

    def _ours(self, path: Path, what: str) -> dict | None:
        """The manifest of `path` if it is ours; None if it is absent or an empty directory; refused otherwise."""
        if not path.exists() and not path.is_symlink():
            return None
        if not path.is_dir():  # a dangling link counts as a file
            raise InterpError(f"{what} {path} exists and is not a directory; choose another --out")
        m = read_manifest(path)
        if m is None:
            if any(path.iterdir()):
                raise InterpError(f"{what} {path} is not empty and was not made by interp (no {MANIFEST}); "
                                  f"nothing was written: choose a new or empty directory")
            return None
        if m.get("kind") != self.kind:
            raise InterpError(f"{what} {path} holds a {m.get('kind')} run, not a {self.kind} run; choose another --out")
        return m

    def check(self, resume: bool, overwrite: bool = False, reuse_finished: bool = False) -> str:
        """Before any work: 'new', 'resume' or 'finished' (only with `reuse_finished`); refuses what is not ours,
        a finished run without `overwrite`, and a stopped run without `resume` or `overwrite`."""
        self._check_lock()
        final = self._ours(self.out, "--out")
        if final and final.get("status") == "complete" and not overwrite:
            if reuse_finished:
                return "finished"
            raise InterpError(f"{self.out} holds a finished {self.kind} run; pass --overwrite to replace it, "
                              f"or choose another --out")
        if not self.atomic:
            if final and not overwrite:
                if not resume:
                    raise InterpError(f"{self.out} holds a stopped {self.kind} run; pass --resume to continue it "
                                      f"or --overwrite to start again")
                return "resume"
            return "new"
        if self._ours(self.work, "the stopped run") and not overwrite:
            if not resume:
                raise InterpError(f"a stopped {self.kind} run is at {self.work}; pass --resume to continue it, "
                                  f"or --overwrite to start again")
            return "resume"
        return "new"

    def _check_lock(self) -> None:
        try:
            held = json.loads(self.lock_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            raise InterpError(f"{self.lock_path} exists and is not an interp lock; remove it if no run is "
                              f"writing {self.out}") from None
        if held.get("host") == socket.gethostname():
            pid = int(held.get("pid", 0))
            if pid == os.getpid() or not _alive(pid):
                return  # ours, or a stale lock whose process is gone
        raise InterpError(f"{self.out} is being written by pid {held.get('pid')} on {held.get('host')} "
                          f"({held.get('command')}, since {held.get('started')}); wait for it or stop it")

    def _take_lock(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                           "started": _now()})
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_lock()  # raises unless the lock is stale
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(info)
            return
        raise InterpError(f"could not take the lock {self.lock_path}; another run started at the same time")

    @contextmanager
    def writing(self, resume: bool, overwrite: bool = False, reuse_finished: bool = False):
        """Lock, (re)check, open the work directory with a 'running' manifest; yield it; on success mark it
        complete and, for atomic runs, move it into place. On any error the work stays for a resume."""
        self._take_lock()
        try:
            state = self.check(resume, overwrite, reuse_finished)
            if overwrite and self.work.is_dir() and state == "new" and read_manifest(self.work):
                shutil.rmtree(self.work)  # a run of ours, replaced as asked
            self.work.mkdir(parents=True, exist_ok=True)
            self._manifest("running", state)
            yield self.work
            self._manifest("complete", state)
            if self.atomic and state != "finished":
                self._move_into_place()
        finally:
            self.lock_path.unlink(missing_ok=True)

    def _manifest(self, status: str, state: str) -> None:
        old = read_manifest(self.work) if state == "resume" else None
        m = {"format": FORMAT, "kind": self.kind, "status": status,
             "created": (old or {}).get("created", _now()), "updated": _now(), "command": _command()}
        write_atomic(self.work / MANIFEST, json.dumps(m, indent=1))

    def _move_into_place(self) -> None:
        if self.out.is_dir():
            if read_manifest(self.out) is None:
                self.out.rmdir()  # empty (checked under the lock); rmdir refuses anything else
            else:
                old = self.out.with_name(self.out.name + ".replaced")
                if old.is_dir() and read_manifest(old):
                    shutil.rmtree(old)  # left by a kill during an earlier replace
                self.out.rename(old)
                self.work.rename(self.out)
                shutil.rmtree(old)
                return
        self.work.rename(self.out)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _command() -> str:
    return " ".join(["interp", *sys.argv[1:]])[:500]
