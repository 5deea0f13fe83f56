"""`python -m interp` is the `interp` command (what `torchrun ... -m interp` launches)."""

from .cli import main

main()
