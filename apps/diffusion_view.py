"""The diffusion views: an `interp dlm order` run's stability curves, one prompt's denoising trajectory (each
read's tokens, and each generated position's largest latents at one layer), and an `interp dlm steer-eval` run's
steering curves."""

from __future__ import annotations

from interp.errors import InterpError

from .html import esc
from .runs import RunsDir, _read_json


class DiffusionViews:
    def __init__(self, runs: RunsDir):
        self.runs = runs

    def _result(self, rel: str) -> dict:
        path = self.runs.path(rel)
        result = _read_json(path) if path.name == "order.json" else None
        if not isinstance(result, dict) or not {"strategies", "hooks", "config"} <= result.keys():
            raise InterpError(f"{rel} is not an order.json of `interp dlm order` in the runs directory")
        return result

    def curves(self, rel: str):
        """The stability curves (plotly) and the summary table with the prediction test's verdict."""
        from saes.decoding_order import order_figure

        result = self._result(rel)
        rows = "".join(f"<tr><td>{esc(s)}</td><td>{100 * v['accuracy']:.1f}</td>"
                       f"<td>{len(v['trajectories'])}</td></tr>" for s, v in result["strategies"].items())
        summary = (f"<table class='order'><tr><th>strategy</th><th>accuracy %</th><th>trajectories kept</th></tr>"
                   f"{rows}</table><p>Does stability while masked predict accuracy? "
                   f"{esc(result['prediction']['verdict'])}</p>")
        return order_figure(result), summary

    def choices(self, rel: str) -> tuple[list[str], list[str], list[str]]:
        """The run's strategies, the prompts with a trajectory, and its hooks."""
        result = self._result(rel)
        first = next(iter(result["strategies"].values()))
        return list(result["strategies"]), sorted(first["trajectories"], key=int), result["hooks"]

    def trajectory(self, rel: str, strategy: str, prompt: str, hook: str) -> str:
        """One row per read: the generated tokens (▢ still masked), each with its largest latents; a latent
        set that changed since the previous read is outlined."""
        result = self._result(rel)
        runs = result["strategies"].get(strategy)
        if runs is None:
            raise InterpError(f"{rel} has no strategy {strategy!r}; it has {', '.join(result['strategies'])}")
        if prompt in (None, "") and not runs["trajectories"]:
            return "<p>this run kept no trajectories (<code>--trajectories 0</code>)</p>"
        traj = runs["trajectories"].get(str(prompt))
        if traj is None:
            raise InterpError(f"prompt {prompt!r} has no trajectory in {rel}; kept: "
                              f"{', '.join(sorted(runs['trajectories'], key=int)) or 'none'}")
        if hook not in result["hooks"]:
            raise InterpError(f"{rel} read {', '.join(result['hooks'])}, not {hook!r}")
        i = int(prompt)
        head = (f"<p><b>prompt</b> {esc(result['prompts'][i])} · <b>answer</b> {esc(result['labels'][i])} · "
                f"<b>{'right' if runs['correct'][i] else 'wrong'}</b> under {esc(strategy)}</p>")
        rows, before = [], None
        for r, read in enumerate(traj["reads"]):
            cells = []
            for g, (tok, lat) in enumerate(zip(read["tokens"], read["latents"][hook])):
                ids = [x[0] for x in lat]
                changed = before is not None and set(ids) != set(before[g])
                style = "background:#edf2f7;" if tok == "▢" else "background:#fefcbf;"
                style += "outline:2px solid #dd6b20;" if changed else ""
                latents = " ".join(f"#{j}" for j in ids[:5])
                cells.append(f"<td style='{style}' title='{esc(latents)}'><b>{esc(tok)}</b>"
                             f"<br><small>{esc(latents)}</small></td>")
            before = [[x[0] for x in lat] for lat in read["latents"][hook]]
            label = "finished" if r == len(traj["reads"]) - 1 else f"step {r + 1}"
            rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
        return head + f"<table class='trajectory'>{''.join(rows)}</table>"

    def steering(self, rel: str):
        """Concept gained against fluency lost per steering method (plotly), with the table and the verdict."""
        from saes.steer_eval import markdown_table, steering_figure

        path = self.runs.path(rel)
        result = _read_json(path) if path.name == "steering.json" else None
        if not isinstance(result, dict) or not {"methods", "verdict", "config"} <= result.keys():
            raise InterpError(f"{rel} is not a steering.json of `interp dlm steer-eval` in the runs directory")
        rows = [line.strip("|").split("|") for line in markdown_table(result).splitlines()[2:]]
        table = "".join("<tr>" + "".join(f"<td>{esc(c.strip())}</td>" for c in r) + "</tr>" for r in rows)
        head = ("<tr><th>method</th><th>strength</th><th>concept gained</th><th>re-read gained</th>"
                "<th>fluency lost (other)</th><th>fluency lost (own)</th></tr>")
        return steering_figure(result), f"<table class='order'>{head}{table}</table><p>{esc(result['verdict'])}</p>"
