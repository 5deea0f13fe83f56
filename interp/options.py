"""Command-line options generated from dataclass configs, so each option is written once.

A config field made with `opt(default, "help", choices=..., min=...)` is the option: `@command(Config)` gives
the decorated function one `--field-name` per field (nested configs' fields flattened, the same names), with
the field's default and help, builds the config from what was typed and passes it in as `cfg`. Lists and
variable-length tuples are typed comma-separated or repeated (`--k 16,32` or `--k 16 --k 32`).
`check_fields(cfg)` enforces `choices` and `min`, so the Python API refuses what the command line refuses.

    @dataclass
    class Config:
        steps: int = opt(100, "optimiser steps", min=1)

    @command(Config)
    def run(cfg: Config, overwrite: bool = typer.Option(False)) -> None: ...
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import typer

from .errors import InterpError


def opt(default: Any = MISSING, help: str = "", *, choices: tuple = (), min: float | None = None,
        factory: Callable[[], Any] | None = None, flag: str | None = None, cli: bool | dict = True) -> Any:
    """A config field that is also a command-line option (`flag` renames it there; `cli=False` keeps it off).
    For a nested config, `cli={"field": None, "other": "new_name"}` shows only those of its options (renamed
    where a name is given), for a config nested inside another that already has some of them."""
    meta = {"help": help, "choices": tuple(choices), "min": min, "flag": flag, "cli": cli}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# options every model-loading config carries, with one help text
def dtype_field() -> Any:
    # checked by interp.loading.torch_dtype, which also names the valid values
    return opt("float32", "precision of the model's weights: float32, bfloat16 or float16")


def device_map_field() -> Any:
    return opt(None, "'auto': accelerate spreads a model too big for one device over all of them (then --device "
                     "only places the rest of the work); needs accelerate")  # checked by loading.check_device_map


def trust_remote_code_field() -> Any:
    return opt(False, "run the model code a checkpoint ships (LLaDA, Dream); only for checkpoints you trust")


@dataclass
class _Option:
    path: tuple[str, ...]  # field names from the top config down
    field: dataclasses.Field
    kind: Any  # the field's type, Optional removed
    optional: bool
    rename: str | None = None  # set by the enclosing config's `cli` dict

    @property
    def name(self) -> str:
        return self.rename or self.field.metadata.get("flag") or self.path[-1]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def many(self) -> bool:
        origin = typing.get_origin(self.kind)
        return origin is list or (origin is tuple and typing.get_args(self.kind)[-1:] == (Ellipsis,))

    def item(self) -> type:
        return typing.get_args(self.kind)[0]

    def default(self) -> Any:
        """The field's default; `...` (required on the command line) for a field without one."""
        f = self.field
        if f.default is MISSING:
            return ... if f.default_factory is MISSING else f.default_factory()
        return f.default

    def parameter(self) -> inspect.Parameter:
        meta, default, extra = self.field.metadata, self.default(), {}
        help = meta.get("help", "")
        if choices := [c for c in meta.get("choices", ()) if c is not None]:
            help = f"{help} ({' | '.join(map(str, choices))})".lstrip()
        if self.many():
            annotation, default = list[str], default if default is ... else [str(v) for v in default]
            extra["metavar"] = "A,B,..."
        else:
            annotation = Path if self.kind is Path else self.kind
        if self.optional:
            annotation = Optional[annotation]
        decls = () if self.kind is bool else (self.flag,)  # bools get --x/--no-x
        if self.kind is bool and self.name != self.path[-1]:
            decls = (f"{self.flag}/--no-{self.flag[2:]}",)
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                 default=typer.Option(default, *decls, help=help, show_default=True, **extra))

    def value(self, typed: Any) -> Any:
        """The field's value from what typer parsed."""
        if typed is None or not self.many():
            return typed
        parts = [v.strip() for text in typed for v in str(text).split(",") if v.strip()]
        try:
            items = [self.item()(p) for p in parts]
        except ValueError:
            raise InterpError(f"{self.flag} takes {self.item().__name__} values, got {', '.join(typed)}") from None
        return items if typing.get_origin(self.kind) is list else tuple(items)


def _unwrap(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def config_options(cls: type, path: tuple[str, ...] = ()) -> list[_Option]:
    """Every command-line option of a config class, nested configs flattened."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if not f.metadata.get("cli", True):
            continue
        kind, optional = _unwrap(hints[f.name])
        if is_dataclass(kind):
            inner = config_options(kind, path + (f.name,))
            if isinstance(shown := f.metadata.get("cli"), dict):
                inner = [dataclasses.replace(o, rename=shown[o.path[-1]]) for o in inner if o.path[-1] in shown]
            out += inner
        else:
            out.append(_Option(path + (f.name,), f, kind, optional))
    names = [o.name for o in out]
    if clash := {n for n in names if names.count(n) > 1}:
        raise TypeError(f"{cls.__name__}: options {clash} appear twice; rename one with flag=")
    return out


def build(cls: type, typed: dict[str, Any], options: list[_Option] | None = None, base: Any = None) -> Any:
    """The config from typed option values (by option name); fields off the command line keep `base`'s values."""
    values: dict[tuple[str, ...], Any] = {o.path: o.value(typed[o.name]) for o in options or config_options(cls)}

    def make(kind: type, path: tuple[str, ...], start: Any) -> Any:
        hints = typing.get_type_hints(kind)
        kw = {}
        for f in fields(kind):
            sub, _ = _unwrap(hints[f.name])
            if is_dataclass(sub):
                kw[f.name] = make(sub, path + (f.name,), getattr(start, f.name) if start is not None else None)
            elif path + (f.name,) in values:
                kw[f.name] = values[path + (f.name,)]
            elif start is not None:
                kw[f.name] = getattr(start, f.name)
        return kind(**kw)

    return make(cls, (), base)


def command(cls: type) -> Callable[[Callable], Callable]:
    """Give the decorated function (first parameter `cfg`) the config's options; its other parameters stay."""
    options = config_options(cls)

    def wrap(fn: Callable) -> Callable:
        sig, hints = inspect.signature(fn), typing.get_type_hints(fn)
        own = [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
               for p in list(sig.parameters.values())[1:]]
        generated = [o.parameter() for o in options]

        @functools.wraps(fn)
        def run(**kwargs):
            cfg = build(cls, {o.name: kwargs.pop(o.name) for o in options}, options)
            return fn(cfg, **kwargs)

        params = generated + own
        run.__signature__ = sig.replace(parameters=params, return_annotation=None)
        run.__annotations__ = {p.name: p.annotation for p in params}
        del run.__wrapped__  # typer must read the generated signature, not the function's own
        return run

    return wrap


def check_fields(cfg: Any) -> None:
    """`choices` and `min` of every field (nested configs too), as the command line names them."""
    for o in config_options(type(cfg)):
        value = cfg
        for name in o.path:
            value = getattr(value, name)
        meta = o.field.metadata
        if meta.get("choices") and value not in meta["choices"]:
            names = [str(c) for c in meta["choices"] if c is not None]
            shown = " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
            raise InterpError(f"{o.flag} must be {shown} (got {value!r})")
        if meta.get("min") is not None and value is not None:
            for v in (value if o.many() else [value]):
                if not v >= meta["min"]:  # false for nan too
                    raise InterpError(f"{o.flag} must be at least {meta['min']} (got {v})")
