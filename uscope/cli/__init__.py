"""The `uscope` command line: one typer app, one module of sub-commands per area."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="uscope",
    help="Profile anonymous smartphone users, complete their behaviour tensors, recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each area module adds its commands to `app` when imported.
    from uscope.cli import complete, data, demo, intent, profile, recommend, synth  # noqa: F401


_register()

if __name__ == "__main__":  # pragma: no cover
    app()
