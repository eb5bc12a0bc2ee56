"""`python -m uscope` is the `uscope` command."""

from uscope.cli import app

app()
