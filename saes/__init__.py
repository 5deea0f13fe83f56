"""Top-K SAE training, evaluation, feature statistics, steering and unlearning (issues 2/6 and 6/6).

Nothing is implemented here yet; it will register its subcommands through the `interp.commands`
entry-point group."""
