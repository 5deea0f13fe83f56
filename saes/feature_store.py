"""Feature statistics on disk, laid out so one latent is read without parsing the others.

    <sae dir>/features.json    hook, d_sae, tokens, window, and per latent: density, max_act, mean_act and the
                               byte offset of its line in features.jsonl (-1 for a latent that never fired)
    <sae dir>/features.jsonl   one JSON object per live latent (`saes.features.feature_stats`'s entry)

A feature page of a 16k-latent SAE is then a seek and a one-line parse; the table comes from the summary.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from interp.errors import InterpError
from interp.rundir import replacing, write_atomic


def write_features(stats: dict, sae_dir: str | Path) -> None:
    """Write `feature_stats` output; the summary goes last, so a file set without it is visibly incomplete."""
    sae_dir = Path(sae_dir)
    d_sae = stats["d_sae"]
    offsets, max_act, mean_act = [-1] * d_sae, [0.0] * d_sae, [0.0] * d_sae
    with replacing(sae_dir / "features.jsonl") as tmp, open(tmp, "wb") as f:
        for key, entry in stats["latents"].items():
            i = int(key)
            offsets[i], max_act[i], mean_act[i] = f.tell(), entry["max_act"], entry["mean_act"]
            f.write(json.dumps(entry).encode() + b"\n")
    summary = {k: v for k, v in stats.items() if k != "latents"}
    summary.update(max_act=max_act, mean_act=mean_act, offsets=offsets)
    write_atomic(sae_dir / "features.json", json.dumps(summary))


class FeatureStore:
    """Read access to one SAE's stored feature statistics."""

    def __init__(self, sae_dir: str | Path):
        self.dir = Path(sae_dir)
        path = self.dir / "features.json"
        if not path.exists() or not (self.dir / "features.jsonl").exists():
            raise InterpError(f"{self.dir} has no feature statistics (features.json and features.jsonl)")
        try:
            self.summary = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InterpError(f"{path} is not valid JSON: {e}") from None

    @property
    def d_sae(self) -> int:
        return self.summary["d_sae"]

    @cached_property
    def alive(self) -> list[bool]:
        return [o >= 0 for o in self.summary["offsets"]]

    def latent(self, i: int) -> dict | None:
        """One latent's statistics; None for a latent that never fired on the statistics tokens."""
        if not 0 <= i < self.d_sae:
            raise InterpError(f"latent {i} is out of range; this SAE has latents 0..{self.d_sae - 1}")
        offset = self.summary["offsets"][i]
        if offset < 0:
            return None
        with open(self.dir / "features.jsonl", "rb") as f:
            f.seek(offset)
            return json.loads(f.readline())

    def table(self) -> list[dict]:
        s = self.summary
        return [{"latent": i, "density": s["density"][i], "max_act": s["max_act"][i], "mean_act": s["mean_act"][i],
                 "dead": not alive} for i, alive in enumerate(self.alive)]
