"""What an unlearning method is: the `UnlearnMethod` protocol, and the `Context` a method reads.

A method either trains (`trains` True: `loss` is one step's loss, and `loop.train` runs the steps, the same
loop, data, parameters and step budget for every method) or edits block l's output at inference (`trains`
False: `edit`). Its options, if it has any of its own, are `cfg.<name>` (a dataclass in its module, a field of
`UnlearnConfig`). `control` asks `prepare` for a control vector u: "irrelevant" (projected into the irrelevant
subspace), "free" (not projected) or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from .config import UnlearnConfig
    from .data import Batch, Batches


@runtime_checkable
class UnlearnMethod(Protocol):
    name: str  # its report row, trained/<name>.safetensors, and cfg.<name> for its own options
    trains: bool
    control: str | None

    def loss(self, ctx: Context, model, batch: Batch) -> torch.Tensor:
        """One training step's loss for `model` (the copy being trained) on the step's rows."""

    def after_step(self, ctx: Context, model, start: dict[str, torch.Tensor]) -> None:
        """After each optimiser step (a proximal step, say); `start` holds the trained parameters before step 0."""

    def edit(self, ctx: Context) -> Callable | None:
        """An inference-time edit: model -> a context manager applying it; None for a method that trains."""


class Method:
    """Defaults for the protocol's optional parts: a trained method without its own step or edit."""
    name: ClassVar[str]
    trains: ClassVar[bool] = True
    control: ClassVar[str | None] = None

    def loss(self, ctx: Context, model, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} trains nothing")

    def after_step(self, ctx: Context, model, start: dict[str, torch.Tensor]) -> None:
        pass

    def edit(self, ctx: Context) -> Callable | None:
        return None

    def options(self, cfg: UnlearnConfig):
        """The method's own options, `cfg.<name>`."""
        return getattr(cfg, self.name)


@dataclass
class Context:
    """What one method's run reads: the frozen model, the data, the trained parameters' names, the layer, the
    config, and what stages 1 and 2 built (c, u, the relevant basis, the SAE and its forget latents)."""
    base: object  # the frozen HF model
    data: Batches
    names: list[str]  # the parameters a trained method may change
    layer: int
    cfg: UnlearnConfig
    coef: float = 0.0  # c
    u: torch.Tensor | None = None  # the control vector the method asked for
    relevant: torch.Tensor | None = None  # [d_model, r] orthonormal basis of the forget features' directions
    sae: object = None
    features: list[int] = field(default_factory=list)  # the forget latents
    sae_dir: Path | None = None
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: str, make: Callable):
        """`make()`, computed once per context: what a method derives from the context for every step."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]
