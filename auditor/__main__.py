"""``python -m auditor`` runs the CLI."""

from auditor.cli import run

run()
