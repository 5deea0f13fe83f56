"""`frontier(config, weights, seeds, out)`: SSPU against RMU at matched retain accuracy.

The retain weight trades retain accuracy for forgetting, and the two methods sit at different points of that
trade-off at the same weight. So both are trained at several retain weights (each its own curve of retain
accuracy against every forget metric), and each SSPU point is compared with RMU's curve interpolated, linearly
in retain accuracy, at the retain accuracy that SSPU point reaches. Where that lies outside RMU's measured range
there is no comparison: the curve is never extrapolated. The differences are also taken seed by seed (each
seed's SSPU point against that seed's RMU curve); their std is the table's ±, and the verdict names the ones
whose mean lies more than two standard errors from zero, the ones the seeds resolve.

Everything else is the `unlearn` run's: the same selection, subspaces, control vectors, data, step budget and
evaluation (clean and under every attack) for each seed.

RMU needs more retain weight than SSPU to keep the same retain accuracy, so `rmu_weights` adds points to RMU's
curve alone (SSPU is not trained there), to reach past the retain accuracy of SSPU's points.

Run directory: config.json, rows/<method>-rw<weight>-s<seed>.json (one per point, written as it finishes, so a
stopped run resumes and more weights or seeds can be added later), frontier.json, frontier.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from statistics import mean, pstdev, stdev

import numpy as np

from interp.errors import InterpError
from interp.rundir import write_atomic

from .config import UnlearnConfig, same_options

FRONTIER_METHODS = ("sspu", "rmu")
METRICS = ("forget", "few_shot", "reworded", "format", "relearn", "probe", "ablation")  # lower is better


def _row_path(out: Path, method: str, weight: float, seed: int) -> Path:
    return out / "rows" / f"{method}-rw{weight:g}-s{seed}.json"


def _config_json(base: UnlearnConfig, out: Path) -> str:
    """One run directory holds one configuration; only the retain weight and the seed vary inside it."""
    mine = replace(base, seed=0, retain_weight=0.0, out="")
    saved = out / "config.json"
    if saved.exists() and not same_options(json.loads(saved.read_text()), mine):
        raise InterpError(f"{out} holds a frontier with other options; rerun with those, or choose another --out")
    return json.dumps(asdict(mine), indent=1)


def points(rows: dict) -> dict:
    """method -> [{retain_weight, seeds, retain_mean, corpus_ce, <metric>...}] (means over seeds), by weight."""
    out = {}
    for method in FRONTIER_METHODS:
        weights = sorted({w for m, w, _ in rows if m == method})
        out[method] = []
        for w in weights:
            rs = [r for (m, ww, _), r in rows.items() if m == method and ww == w]
            p = {"retain_weight": w, "seeds": len(rs), "retain_mean": mean(r["retain_mean"] for r in rs),
                 "corpus_ce": mean(r["corpus_ce"] for r in rs)}
            p |= {k: mean(r[k] for r in rs) for k in METRICS if all(k in r for r in rs)}
            out[method].append(p)
    return out


def matched(sspu: list[dict], rmu: list[dict]) -> list[dict]:
    """For each SSPU point, SSPU minus RMU interpolated at SSPU's retain accuracy, per metric and for corpus
    cross-entropy, the other utility measure (None outside RMU's retain range, or where RMU has fewer than two
    points)."""
    curve = sorted(rmu, key=lambda p: p["retain_mean"])
    xs = [p["retain_mean"] for p in curve]
    result = []
    for p in sspu:
        diff = None
        if len(curve) >= 2 and xs[0] <= p["retain_mean"] <= xs[-1]:
            diff = {k: p[k] - float(np.interp(p["retain_mean"], xs, [q[k] for q in curve]))
                    for k in (*METRICS, "corpus_ce") if k in p and all(k in q for q in curve)}
        result.append({"retain_weight": p["retain_weight"], "retain_mean": p["retain_mean"], "sspu_minus_rmu": diff})
    return result


def with_seed_spread(comparison: list[dict], rows: dict) -> list[dict]:
    """Adds to each comparison the std over seeds of the same difference taken seed by seed (each seed's SSPU
    point against that seed's RMU curve), and how many seeds had a match."""
    per_seed = {}
    for seed in sorted({s for _, _, s in rows}):
        pts = points({k: r for k, r in rows.items() if k[2] == seed})
        for c in matched(pts["sspu"], pts["rmu"]):
            if c["sspu_minus_rmu"]:
                per_seed.setdefault(c["retain_weight"], []).append(c["sspu_minus_rmu"])
    for c in comparison:
        diffs = per_seed.get(c["retain_weight"], [])
        keys = [k for k in METRICS if len(diffs) > 1 and all(k in d for d in diffs)]
        c["seeds_matched"] = len(diffs)
        c["std_over_seeds"] = {k: pstdev(d[k] for d in diffs) for k in keys}
        # the seed-by-seed differences' mean and its standard error, to say which differences the seeds resolve
        c["seed_mean"] = {k: mean(d[k] for d in diffs) for k in keys}
        c["seed_se"] = {k: stdev(d[k] for d in diffs) / len(diffs) ** 0.5 for k in keys}
    return comparison


def resolved(c: dict) -> tuple[list[str], list[str]]:
    """The metrics whose seed-by-seed mean difference is more than two standard errors below / above zero."""
    m, se = c.get("seed_mean", {}), c.get("seed_se", {})
    return ([k for k in m if m[k] < -2 * se[k]], [k for k in m if m[k] > 2 * se[k]])


def table(pts: dict, comparison: list[dict]) -> str:
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"
    head = ["method", "retain weight", "seeds", "retain mean", *METRICS, "corpus CE"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, ps in pts.items():
        lines += [f"| {method} | {p['retain_weight']:g} | {p['seeds']} | {pct(p['retain_mean'])} | "
                  + " | ".join(pct(p.get(k)) for k in METRICS) + f" | {p['corpus_ce']:.3f} |" for p in ps]
    lines += ["", "SSPU − RMU at SSPU's retain accuracy (RMU's mean curve interpolated; points, negative: SSPU "
              "forgets more; ± the std over seeds of the same difference taken seed by seed):", "",
              "| SSPU retain weight | retain mean | seeds matched | " + " | ".join(METRICS) + " | corpus CE |",
              "|---" * (len(METRICS) + 4) + "|"]
    for c in comparison:
        d = c["sspu_minus_rmu"]
        if d is None:
            cells = ["outside RMU's range"] + [""] * len(METRICS)
        else:
            sd = c["std_over_seeds"]
            cells = [("–" if k not in d else f"{100 * d[k]:+.1f}" + (f" ± {100 * sd[k]:.1f}" if k in sd else ""))
                     for k in METRICS] + [f"{d['corpus_ce']:+.3f}"]
        lines.append(f"| {c['retain_weight']:g} | {pct(c['retain_mean'])} | {c['seeds_matched']} | "
                     + " | ".join(cells) + " |")
    for c in comparison:  # a verdict for every SSPU weight that RMU's curve reaches
        if d := c["sspu_minus_rmu"]:
            worse = [k for k in METRICS if k in d and d[k] >= 0]
            lower, higher = resolved(c)
            lines += ["", f"At retain weight {c['retain_weight']:g}, SSPU is lower than RMU at matched retain under "
                      + ("every metric." if not worse else f"all but: {', '.join(worse)}.")
                      + f" Seed by seed ({c['seeds_matched']} matched), beyond two standard errors it is lower "
                      f"under {', '.join(lower) or 'none'} and higher under {', '.join(higher) or 'none'}."]
    return "\n".join(lines) + "\n"


def frontier(base: UnlearnConfig, weights: list[float], seeds: int, out: str | Path,
             show_progress: bool = True, rmu_weights: tuple[float, ...] = ()) -> dict:
    """Train and evaluate SSPU and RMU at every retain weight, and RMU alone at `rmu_weights`, for seeds
    0..seeds-1 (module docstring)."""
    from interp.rundir import RunDir

    base.validate()
    if seeds < 1:
        raise InterpError("the frontier needs at least one seed")
    if not weights or any(w < 0 for w in [*weights, *rmu_weights]):
        raise InterpError("--retain-weights needs one or more weights, and every weight must be >= 0")
    run = RunDir(out, "unlearn-frontier", atomic=False)
    run.check(resume=True, reuse_finished=True)  # more weights or seeds extend a finished frontier
    config = _config_json(base, run.out)
    with run.writing(resume=True, reuse_finished=True) as out:
        return _frontier(base, weights, seeds, out, config, show_progress, rmu_weights)


def _frontier(base: UnlearnConfig, weights: list[float], seeds: int, out: Path, config: str, show_progress: bool,
              rmu_weights: tuple[float, ...]) -> dict:
    from tqdm.auto import tqdm

    from interp.corpus import packed_corpus_batch

    from .evaluate import evaluate
    from .setup import prepare

    wanted = [(m, w) for w in weights for m in FRONTIER_METHODS] + [("rmu", w) for w in rmu_weights if w not in weights]
    todo = [(m, w, s) for s in range(seeds) for m, w in wanted if not _row_path(out, m, w, s).exists()]
    bar = tqdm(total=len(todo), desc="frontier", unit="point", disable=not show_progress)
    for seed in sorted({s for _, _, s in todo}):
        cfg = replace(base, seed=seed)
        s = prepare(cfg)  # nothing in it depends on the retain weight
        corpus = packed_corpus_batch(s.tok, 16, 64, "unlearn-eval")
        (out / "rows").mkdir(parents=True, exist_ok=True)
        write_atomic(out / "config.json", config)
        for method, w, _ in [t for t in todo if t[2] == seed]:
            bar.set_postfix(method=method, retain_weight=w, seed=seed)
            at = replace(cfg, retain_weight=w)
            row = evaluate(s.train(method, at), s.tok, at.forget_tasks()[0], at.retain_tasks(), corpus,
                           s.sel.layer, at, original=s.base)
            write_atomic(_row_path(out, method, w, seed), json.dumps(row | {"layer": s.sel.layer}))
            bar.update(1)
    bar.close()
    rows = {(m, w, s): json.loads(_row_path(out, m, w, s).read_text()) for m, w in wanted for s in range(seeds)}
    pts = points(rows)
    comparison = with_seed_spread(matched(pts["sspu"], pts["rmu"]), rows)
    markdown = table(pts, comparison)
    write_atomic(out / "frontier.json", json.dumps({"config": asdict(base), "weights": weights,
                                              "rmu_weights": list(rmu_weights), "seeds": seeds, "points": pts,
                                              "matched": comparison}, indent=1))
    write_atomic(out / "frontier.md", markdown)
    return {"points": pts, "matched": comparison, "markdown": markdown}
