"""Lazy package exports: `__getattr__ = lazy_getattr(__name__, {name: submodule})` keeps imports light."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, exports: dict[str, str]):
    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
