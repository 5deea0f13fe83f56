"""`interp circuits discover | track | compare` (a thin layer over the circuits API); `interp circuit-lora`
lives in `lora_commands.py`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from interp.console import console
from interp.errors import InterpError
from interp.options import command

from .discovery import DiscoverConfig
from .tracking import TrackConfig

app = typer.Typer(help="Circuits: EAP / EAP-IG edge attribution, evaluation, checkpoints.", no_args_is_help=True)


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


@app.command("discover")
@command(DiscoverConfig)
def discover_cmd(
    cfg: DiscoverConfig,
    curve: bool = typer.Option(True, help="also evaluate circuits of 1%..10% of edges"),
    splits: int = typer.Option(0, help="robustness: mean pairwise Jaccard over this many disjoint splits (0: skip)"),
    out: Optional[Path] = typer.Option(None, help="output directory (default runs/circuits/<model>-<task>)"),
    overwrite: bool = typer.Option(False, help="replace a circuit interp wrote at --out"),
) -> None:
    """Discover a task's circuit; write circuit.json and circuit.html; report faithfulness."""
    from interp.loading import load_model
    from interp.rundir import RunDir

    from .comparison import robustness
    from .discovery import discover, split_circuits, write_circuit

    cfg = cfg if curve else replace(cfg, curve=())
    cfg.validate()
    if splits == 1 or splits < 0:
        raise InterpError("--splits must be 0 (skip) or >= 2")
    run = RunDir(out or Path("runs/circuits") / f"{Path(cfg.model).name}-{cfg.task}", "circuit")
    run.check(resume=False, overwrite=overwrite)
    loaded = load_model(cfg.model, hooks_for_edges=True, device=cfg.device, dtype=cfg.dtype,
                        device_map=cfg.device_map, trust_remote_code=cfg.trust_remote_code)
    result = discover(cfg, loaded, show_progress=True)
    if splits:
        result.circuit.info["robustness"] = robustness(split_circuits(cfg, splits, loaded, show_progress=True))
    with run.writing(resume=False, overwrite=overwrite) as work:
        write_circuit(result.circuit, work)
    _print_discovery(cfg, result, splits)
    path = run.out / "circuit.json"
    console.print(f"written: {path} and {path.with_suffix('.html')}")


def _print_discovery(cfg: DiscoverConfig, result, splits: int) -> None:
    c, ev = result.circuit, result.evaluation
    console.print(f"{cfg.model} · {cfg.task} · {cfg.method} ({cfg.metric}): {len(c.edge_names)} of {len(c.graph.edges)} edges "
                  f"({100 * c.share_kept:.1f}%), {len(c.node_names)} of {len(c.graph.nodes)} nodes; "
                  f"attribution {result.seconds:.1f} s; peak memory {c.info['peak_rss_mb']:,.0f} MB"
                  + (f" (GPU {c.info['peak_cuda_mb']:,.0f} MB)" if c.info.get("peak_cuda_mb") is not None else ""))
    console.print(f"faithfulness {ev['faithfulness']:.1f} · logit diff recovered {_pct(ev['logit_diff_recovered'])} · "
                  f"prob diff recovered {_pct(ev['prob_diff_recovered'])} · "
                  f"accuracy circuit {100 * ev['accuracy']:.1f}% vs full model {100 * ev['accuracy_full_model']:.1f}%")
    if result.curve:
        table = Table(title="faithfulness by share of edges kept (before pruning)")
        for col in ("% edges", "kept after pruning", "faithfulness (KL)", "logit diff recovered",
                    "prob diff recovered", "accuracy"):
            table.add_column(col)
        for r in result.curve:
            table.add_row(f"{r['percent']:g}", str(r["n_edges"]), _pct(r["faithfulness"]),
                          _pct(r["logit_diff_recovered"]), _pct(r["prob_diff_recovered"]), f"{100 * r['accuracy']:.1f}")
        console.print(table)
    if splits:
        rb = c.info["robustness"]
        console.print(f"robustness over {splits} disjoint splits: edge Jaccard {rb['edge_jaccard']:.3f}, "
                      f"node Jaccard {rb['node_jaccard']:.3f}")


@app.command("track")
@command(TrackConfig)
def track_cmd(cfg: TrackConfig,
              overwrite: bool = typer.Option(False, help="start again over a track run interp made at --out")) -> None:
    """Fine-tune, discover the circuit at every checkpoint, and compare them (resumable)."""
    from .tracking import track

    summary = track(cfg, overwrite=overwrite)
    out = cfg.run_dir()
    table = Table(title=f"{cfg.model} · {cfg.task} · {cfg.method} fine-tuning: circuits at checkpoints")
    for col in ("step", "accuracy", "faithfulness", "nodes", "edges", "node J vs prev", "edge J vs prev",
                "node J vs base", "edge J vs base", "robustness edge J"):
        table.add_column(col)
    prev = {c["to"]: c for c in summary["consecutive"]}
    base = {c["step"]: c for c in summary["vs_base"]}
    for r in summary["checkpoints"]:
        p, b = prev.get(r["step"]), base.get(r["step"])
        table.add_row(str(r["step"]), f"{100 * r['accuracy']:.1f}", _pct(r["faithfulness"]), str(r["nodes"]),
                      str(r["edges"]), f"{p['node_jaccard']:.2f}" if p else "", f"{p['edge_jaccard']:.2f}" if p else "",
                      f"{b['node_jaccard']:.2f}" if b else "", f"{b['edge_jaccard']:.2f}" if b else "",
                      f"{r['robustness_edge_jaccard']:.2f}" if r["robustness_edge_jaccard"] is not None else "")
    console.print(table)
    console.print(f"written: {out / 'track.json'} and {out / 'circuits'}/step-N/")


def _circuit_paths(paths: list[Path]) -> list[Path]:
    """Circuit files; a track directory stands for its checkpoints' circuits in step order."""
    found = []
    for p in paths:
        if (p / "circuits").is_dir():
            steps = sorted((p / "circuits").glob("step-*/circuit.json"), key=lambda q: int(q.parent.name[5:]))
            found += steps
        else:
            found.append(p / "circuit.json" if p.is_dir() else p)
    return found


@app.command("compare")
def compare_cmd(
    paths: list[Path] = typer.Argument(..., help="circuit files or directories (A B ...), or a track directory"),
    count_by: str = typer.Option("source", help="count each edge's change toward its source or target layer"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the full comparison here"),
    overwrite: bool = typer.Option(False, help="replace the file given to --json"),
) -> None:
    """Compare circuits in order: nodes added/removed, edge flips, Jaccard, per-layer edge change."""
    from interp.rundir import check_new_file, write_atomic

    from .circuit import Circuit
    from .comparison import compare

    if json_out:
        check_new_file(json_out, overwrite)

    files = _circuit_paths(paths)
    if len(files) < 2:
        raise InterpError("compare needs at least two circuits (A B, or a track directory)")
    circuits = [Circuit.load(f) for f in files]
    label = lambda f: f.parent.name if f.name == "circuit.json" else f.stem  # step-N for a track's circuits
    results = [{"from": label(a), "to": label(b), "from_path": str(a), "to_path": str(b), **compare(x, y, count_by)}
               for a, b, x, y in zip(files, files[1:], circuits, circuits[1:])]
    n_layers = circuits[0].graph.n_layers
    table = Table(title=f"circuit changes (edge change summed by {count_by} layer)")
    for col in ("from → to", "nodes +/-", "edges +/-", "node J", "edge J", "total change") + tuple(
            f"L{l}" for l in range(n_layers + 1)):
        table.add_column(col)
    for r in results:
        table.add_row(f"{r['from']} → {r['to']}", f"+{len(r['nodes_added'])}/-{len(r['nodes_removed'])}",
                      f"+{len(r['edges_added'])}/-{len(r['edges_removed'])}", f"{r['node_jaccard']:.2f}",
                      f"{r['edge_jaccard']:.2f}", f"{r['total_change']:.3g}",
                      *[f"{r['layer_change'][l]:.3g}" for l in range(n_layers + 1)])
    console.print(table)
    if json_out:
        write_atomic(json_out, json.dumps(results, indent=1))
        console.print(f"written: {json_out}")


def register(root: typer.Typer) -> None:
    from .lora_commands import lora_app

    root.add_typer(app, name="circuits")
    root.add_typer(lora_app, name="circuit-lora")
