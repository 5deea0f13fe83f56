"""`unlearn(config)`: SSPU end to end against every other registered method, with attacks (docs/methods.md §3);
`experiment` over seeds; the report's table.

Setting: forget one task family (default mul_div), retain the others and the base corpus, on a model good at
both (default: pythia-mini fine-tuned on the five task families, made once with the fine-tuning loop and
cached under runs/unlearn/). SAEs on the candidate layers' residual streams come from `--sae RUN` or are
trained once with `train_sae` and cached.

Run directory (written as `<out>.partial`, renamed when complete; interp/rundir.py):
    interp-run.json  config.json  selection.json (layer, layer scores, forget and irrelevant features with top contexts)
    bases.safetensors (relevant, irrelevant, u)  model/ (the SSPU model, save_pretrained)  report.json  report.md
    trained/<method>.safetensors (the trained parameters)  rows/<method>.json (its metrics)
A stopped run resumes from `<out>.partial` when rerun with the same options.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.rundir import write_atomic

from .config import UnlearnConfig, same_options
from .setup import Setup, check_sae_run, prepare

HEADLINE = "sspu"  # the method whose model run directories keep (model/) and whose u bases.safetensors holds


def unlearn(cfg: UnlearnConfig | None = None, show_progress: bool = True, overwrite: bool = False) -> dict:
    """The whole method (module docstring). A finished run of the same options at `cfg.out` is read back; a
    stopped one resumes from its `.partial` directory: methods already trained and rows already evaluated are
    read back, not redone. `overwrite` starts again over a run of ours."""
    from interp.rundir import RunDir

    cfg = cfg or UnlearnConfig()
    cfg.validate()
    if cfg.sae:
        check_sae_run(Path(cfg.sae))  # before the default model's fine-tune, which takes minutes
    run = RunDir(cfg.out, "unlearn")
    state = run.check(resume=True, overwrite=overwrite, reuse_finished=True)
    if state == "finished":
        report = json.loads((run.out / "report.json").read_text())
        if not same_options(report["config"], cfg):
            raise InterpError(f"{run.out} holds a finished run with other options; choose another --out or pass "
                              f"--overwrite")
        return report
    saved = run.work / "config.json"
    if state == "resume" and saved.exists() and not same_options(json.loads(saved.read_text()), cfg):
        raise InterpError(f"{run.work} holds a stopped run with other options; rerun with those, choose another "
                          f"--out, or pass --overwrite")
    s = prepare(cfg)
    with run.writing(resume=True, overwrite=overwrite) as work:
        write_stages(cfg, s, work)
        models = method_models(cfg, s, work, show_progress)
        rows = evaluate_rows(cfg, s, models, work, show_progress)
        return write_report(cfg, s, models, rows, work)


def write_stages(cfg: UnlearnConfig, s: Setup, work: Path) -> None:
    """selection.json, bases.safetensors, and last config.json, which marks the directory resumable."""
    from safetensors.torch import save_file

    from .select import selection_json

    write_atomic(work / "selection.json", json.dumps(selection_json(s.sel, s.sae_dir), indent=1))
    bases = {"relevant": s.relevant, "irrelevant": s.irrelevant, "u": s.u[HEADLINE]}
    save_file({k: v.contiguous() for k, v in bases.items()}, str(work / "bases.safetensors"))
    write_atomic(work / "config.json", json.dumps(asdict(cfg), indent=1))


def method_models(cfg: UnlearnConfig, s: Setup, work: Path, show_progress: bool) -> dict[str, tuple]:
    """method name -> (the model it is evaluated as, its inference-time edit or None), in registry order."""
    from tqdm.auto import tqdm

    from .registry import UNLEARN_METHODS

    trained = [m for m in UNLEARN_METHODS.values() if m.trains]
    bar = tqdm(total=len(trained) * cfg.steps, desc="unlearn", disable=not show_progress)
    models = {}
    for m in UNLEARN_METHODS.values():
        models[m.name] = (trained_model(m.name, cfg, s, work, bar), None) if m.trains else \
            (s.base, m.edit(s.context(m.name, cfg)))
    bar.close()
    return models


def trained_model(name: str, cfg: UnlearnConfig, s: Setup, work: Path, bar):
    """Method `name`'s model: loaded from `work/trained/` when a stopped run already trained it."""
    import copy

    from safetensors.torch import load_file, save_file

    from interp.rundir import replacing

    path = work / "trained" / f"{name}.safetensors"
    if path.exists():
        model = copy.deepcopy(s.base)
        model.load_state_dict(load_file(str(path)), strict=False)
        bar.update(cfg.steps)
        return model
    model = s.train(name, cfg, bar)
    path.parent.mkdir(exist_ok=True)
    params = dict(model.named_parameters())
    with replacing(path) as tmp:
        save_file({n: params[n].detach().contiguous() for n in s.names}, str(tmp))
    return model


def evaluate_rows(cfg: UnlearnConfig, s: Setup, models: dict, work: Path, show_progress: bool) -> dict:
    """The original model's row and each method's, every metric and attack; a row already written is read back."""
    from tqdm.auto import tqdm

    from interp.corpus import packed_corpus_batch

    from . import evaluate as ev

    corpus = packed_corpus_batch(s.tok, 16, 64, "unlearn-eval")
    forget, retain, layer = cfg.forget_tasks()[0], cfg.retain_tasks(), s.sel.layer
    jobs = {"original": lambda: ev.evaluate(s.base, s.tok, forget, retain, corpus, layer, cfg)}
    jobs |= {name: (lambda model=model, edit=edit: ev.evaluate(model, s.tok, forget, retain, corpus, layer, cfg,
                                                               original=s.base, edit=edit))
             for name, (model, edit) in models.items()}
    rows = {}
    (work / "rows").mkdir(exist_ok=True)
    for name, job in tqdm(jobs.items(), desc="evaluate", disable=not show_progress):
        path = work / "rows" / f"{name}.json"
        if not path.exists():
            write_atomic(path, json.dumps(job()))
        rows[name] = json.loads(path.read_text())
    return rows


def write_report(cfg: UnlearnConfig, s: Setup, models: dict, rows: dict, work: Path) -> dict:
    from .evaluate import chance

    headline = models[HEADLINE][0]
    before = dict(s.base.named_parameters())
    changed = [n for n, p in headline.named_parameters() if not torch.equal(p, before[n])]
    report = {"config": asdict(cfg), "model": s.model_name, "layer": s.sel.layer, "hook": s.sel.hook,
              "params": s.names, "changed_params": changed, "chance": chance(cfg.forget_tasks()[0], cfg.n_eval),
              "coef": s.coef, "rows": rows}
    headline.save_pretrained(work / "model")
    s.tok.save_pretrained(work / "model")
    write_atomic(work / "report.json", json.dumps(report, indent=1))
    write_atomic(work / "report.md", table(report))
    return report


COLUMNS = ("forget", "retain_mean", "corpus_ce", "few_shot", "reworded", "format", "relearn", "probe", "ablation")


def table(report: dict) -> str:
    retain = list(next(iter(report["rows"].values()))["retain"])
    head = ["method", "forget", *retain, "retain mean", "corpus CE", "few-shot", "reworded", "format", "relearn",
            "probe", "ablation"]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in report["rows"].items():
        cells = [pct(r["forget"]), *(pct(r["retain"][t]) for t in retain), pct(r["retain_mean"]),
                 f"{r['corpus_ce']:.3f}", *(pct(r.get(k)) for k in COLUMNS[3:])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"accuracy in %; chance (most common answer) {100 * report['chance']:.1f}%; layer {report['layer']}")
    chosen = ", ".join(f"{m} {r['relearn_lr']:g}" for m, r in report["rows"].items())
    lines.append(f"relearn: the attacker's best learning rate of {report['config']['relearn_lrs']} ({chosen})")
    return "\n".join(lines) + "\n"


def experiment(base: UnlearnConfig, seeds: int, out: str | Path) -> dict:
    """`unlearn` for seeds 0..seeds-1 (each its own run directory under `out`, so a stopped experiment
    resumes); mean +- std per method and metric, and SSPU - RMU per metric."""
    from dataclasses import replace

    from interp.rundir import RunDir

    if seeds < 1:
        raise InterpError("the experiment needs at least one seed")
    run = RunDir(out, "unlearn-experiment", atomic=False)
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True) as out:
        reports = [unlearn(replace(base, seed=s, out=str(out / f"s{s}"))) for s in range(seeds)]
        return experiment_table(base, seeds, out, reports)


def experiment_table(base: UnlearnConfig, seeds: int, out: Path, reports: list[dict]) -> dict:
    from statistics import mean, pstdev

    methods = list(reports[0]["rows"])
    summary = {m: {k: [r["rows"][m].get(k) for r in reports] for k in COLUMNS} for m in methods}
    cell = lambda v, k: "–" if None in v else (f"{mean(v):.3f}" if k == "corpus_ce" else
                                                 f"{100 * mean(v):.1f} ± {100 * pstdev(v):.1f}")
    lines = ["| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(cell(summary[m][k], k) for k in COLUMNS) + " |" for m in methods]
    diff = {k: 100 * (mean(summary["sspu"][k]) - mean(summary["rmu"][k])) for k in COLUMNS
            if k != "corpus_ce" and None not in summary["sspu"][k] + summary["rmu"][k]}
    lines += ["", f"seeds {seeds}; accuracy in %; chance {100 * reports[0]['chance']:.1f}%; layers "
              f"{sorted({r['layer'] for r in reports})}",
              "SSPU - RMU at the same retain weight (points): " + ", ".join(f"{k} {v:+.1f}" for k, v in diff.items()),
              "At matched retain accuracy instead: `interp unlearn frontier`.",
              f"relearn: the attacker's best learning rate of {base.relearn_lrs}, per seed: " +
              "; ".join(f"{m} " + ", ".join(f"{r['rows'][m]['relearn_lr']:g}" for r in reports) for m in methods)]
    markdown = "\n".join(lines) + "\n"
    (out / "experiment.json").write_text(json.dumps({"config": asdict(base), "seeds": seeds, "summary": summary,
                                                     "sspu_minus_rmu": diff}, indent=1))
    (out / "experiment.md").write_text(markdown)
    return {"summary": summary, "markdown": markdown, "sspu_minus_rmu": diff}
