"""Commands generated from dataclass configs: every option once, with its field's default, help and checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from interp.errors import InterpError
from interp.options import build, check_fields, command, config_options, opt


def job_configs():
    from circuits.circuit_lora import CircuitLoRAConfig
    from circuits.discovery import DiscoverConfig
    from circuits.tracking import TrackConfig
    from interp.evaluate import EvalConfig
    from interp.finetune import FinetuneConfig
    from saes.config import SAETrainConfig
    from saes.unlearning import UnlearnConfig

    return [SAETrainConfig, FinetuneConfig, DiscoverConfig, TrackConfig, CircuitLoRAConfig, UnlearnConfig, EvalConfig]


@pytest.mark.parametrize("cls", job_configs(), ids=lambda c: c.__name__)
def test_every_option_has_help_and_its_fields_default(cls):
    options = config_options(cls)
    assert options and all(o.field.metadata.get("help") for o in options), [o.name for o in options
                                                                            if not o.field.metadata.get("help")]
    if all(o.default() is not ... for o in options):  # the typed defaults build the config's own defaults
        typed = {o.name: o.parameter().default.default for o in options}
        assert build(cls, typed, options, base=cls()) == cls()


@dataclass
class Inner:
    rate: float = opt(0.5, "a nested option", min=0)


@dataclass
class Toy:
    k: list[int] = opt(factory=lambda: [32], help="values", min=1)
    mode: str = opt("a", "a mode", choices=("a", "b"))
    inner: Inner = opt(factory=Inner)
    hidden: int = opt(7, cli=False)


def toy_app(seen: list):
    app = typer.Typer()

    @app.command()
    @command(Toy)
    def run(cfg: Toy, dry: bool = typer.Option(False)) -> None:
        check_fields(cfg)
        seen.append((cfg, dry))

    return app


def test_generated_command_builds_the_config():
    seen = []
    r = CliRunner().invoke(toy_app(seen), ["--k", "16,32", "--k", "64", "--rate", "2", "--dry"])
    assert r.exit_code == 0, r.output
    assert seen == [(Toy(k=[16, 32, 64], inner=Inner(rate=2.0)), True)]
    assert "--hidden" not in CliRunner().invoke(toy_app([]), ["--help"]).output


@pytest.mark.parametrize("args, message", [
    (["--mode", "c"], "--mode must be a or b (got 'c')"),
    (["--k", "0"], "--k must be at least 1 (got 0)"),
    (["--k", "x"], "--k takes int values"),
])
def test_bad_values_are_refused_by_the_fields_checks(args, message):
    r = CliRunner().invoke(toy_app([]), args)
    assert isinstance(r.exception, InterpError) and message in str(r.exception)


def test_a_name_twice_is_refused_when_the_command_is_made():
    @dataclass
    class Clash:
        rate: float = opt(1.0, "clashes with the nested one")
        inner: Inner = opt(factory=Inner)

    with pytest.raises(TypeError, match="appear twice"):
        config_options(Clash)
