"""The ``vcc`` command line: one entry point for operators, SREs and the demo."""

from __future__ import annotations

import typer

from orchestrator.settings import Settings

app = typer.Typer(
    name="vcc",
    help="vcc: many contact-center sites routed as one virtual contact center.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def settings() -> Settings:
    return Settings()


@app.callback()
def main() -> None:
    """vcc command line."""
