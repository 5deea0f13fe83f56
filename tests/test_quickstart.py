"""examples/quickstart.ipynb runs from top to bottom: its code cells, in order, in one namespace (as a kernel
would run them), in a scratch directory."""

import json
from pathlib import Path

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"quickstart cell {i}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "faithfulness" in out and "latent" in out
    assert 0.5 < namespace["metrics"]["explained_variance"] <= 1.0
    assert (tmp_path / "runs" / "quickstart" / "circuit" / "circuit.json").exists()
    assert namespace["feature"]["top"]  # the feature opened has top contexts
