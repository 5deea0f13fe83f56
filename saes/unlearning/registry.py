"""UNLEARN_METHODS: every method a run trains (or applies) and evaluates, in report order. A new method is a
module beside this one and one `register` line here."""

from __future__ import annotations

from interp.errors import InterpError

from . import clamp, gradient_ascent, rmu, sspu
from .method import UnlearnMethod

UNLEARN_METHODS: dict[str, UnlearnMethod] = {}


def register(method: UnlearnMethod) -> UnlearnMethod:
    if not isinstance(method, UnlearnMethod):
        raise TypeError(f"{method!r} does not follow the UnlearnMethod protocol (saes/unlearning/method.py)")
    if method.name in UNLEARN_METHODS or method.name == "original":  # a report row each, and "original" is taken
        raise ValueError(f"an unlearning method named {method.name!r} is already registered")
    UNLEARN_METHODS[method.name] = method
    return method


def get_method(name: str) -> UnlearnMethod:
    if name not in UNLEARN_METHODS:
        raise InterpError(f"unknown unlearning method {name!r}; valid: {', '.join(UNLEARN_METHODS)}")
    return UNLEARN_METHODS[name]


register(sspu.SSPU())
register(rmu.RMU())
register(gradient_ascent.GradientAscent())
register(clamp.SAEClamping())
