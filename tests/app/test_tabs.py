"""The tab registry and the scan's circuit test, on small hand-made runs directories (no model is loaded)."""

import json

import pytest

CIRCUIT = {"format": "interp.circuit/1", "model": "m", "task": "t"}


def test_every_tab_registered_in_page_order(tmp_path):
    from apps.app import build_app
    from apps.tabs import TABS

    assert [t.title for t in TABS] == ["Features", "Circuits", "Unlearning", "Diffusion"]
    config = build_app(tmp_path).get_config_file()
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == ["Features", "Circuits", "Unlearning", "Diffusion"]
    apis = {d["api_name"] for d in config["dependencies"] if d["api_visibility"] == "public"}
    assert apis == {"feature_table", "feature_page", "test_text", "search", "steer", "circuit", "compare",
                    "allocation", "unlearn_features", "order_curves", "order_trajectory", "steering_curves", "runs"}


def test_circuits_are_found_by_their_format_field(tmp_path):
    from apps.runs import RunsDir

    write = lambda name, value: (tmp_path / name).write_text(value if isinstance(value, str) else json.dumps(value))
    # the format field anywhere in the object, past any first bytes
    write("late.json", {"notes": "x" * 200, **CIRCUIT})
    write("mention.json", {"about": '"format": "interp.circuit/1"', "format": "other/1"})
    write("list.json", [CIRCUIT])
    write("broken.json", json.dumps(CIRCUIT)[:-1])
    write("binary.json", "\xff\xfe" + json.dumps(CIRCUIT))
    write("deep.json", "[" * 100_000 + "]" * 100_000)
    runs = RunsDir(tmp_path)
    assert [c.path for c in runs.scan().circuits] == ["late.json"]
    write("late.json", {"format": "other/1"})  # rewritten: the scan reads it again
    assert runs.scan().circuits == []


def test_json_over_the_size_bound_is_not_read(tmp_path, monkeypatch):
    import apps.runs
    from apps.runs import RunsDir

    (tmp_path / "big.json").write_text(json.dumps({**CIRCUIT, "pad": "x" * 1000}))
    monkeypatch.setattr(apps.runs, "MAX_JSON_BYTES", 1000)
    assert RunsDir(tmp_path).scan().circuits == []
    monkeypatch.setattr(apps.runs, "MAX_JSON_BYTES", 2000)
    assert [c.path for c in RunsDir(tmp_path).scan().circuits] == ["big.json"]


@pytest.mark.parametrize("model", [7, None])
def test_a_circuit_label_takes_any_model_value(tmp_path, model):
    from apps.runs import RunsDir

    (tmp_path / "c.json").write_text(json.dumps({**CIRCUIT, "model": model}))
    assert RunsDir(tmp_path).scan().circuits[0].label == f"{model} · t · c.json"


def test_a_run_without_trajectories_says_so(tmp_path):
    from apps.diffusion_view import DiffusionViews
    from apps.runs import RunsDir
    from interp.errors import InterpError

    run = {"config": {}, "hooks": ["blocks.0.hook_resid_post"], "prompts": ["p"], "labels": ["1"],
           "strategies": {"random": {"trajectories": {}, "correct": [False], "accuracy": 0.0}}}
    (tmp_path / "order.json").write_text(json.dumps(run))
    views = DiffusionViews(RunsDir(tmp_path))
    assert views.choices("order.json") == (["random"], [], ["blocks.0.hook_resid_post"])
    assert "no trajectories" in views.trajectory("order.json", "random", None, "blocks.0.hook_resid_post")
    with pytest.raises(InterpError, match="no trajectory"):
        views.trajectory("order.json", "random", "0", "blocks.0.hook_resid_post")
