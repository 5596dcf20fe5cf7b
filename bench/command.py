"""The `loyalloop bench` command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from bench.run import run_bench, table, write_json

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@click.command()
@click.option("--quick", is_flag=True, help="Smaller counts (1,000 open lifecycles, not 10,000); "
              "under two minutes.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the figures to this JSON file.")
@click.option("--database-url", default=POSTGRES, show_default=True,
              help="PostgreSQL server to create a throwaway database on (or a SQLite URL).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Record the Loyalloop worker with py-spy during the lifecycle run "
                   "(speedscope JSON in this folder).")
@click.option("--max-cached-workflows", "max_cached", default=1000, show_default=True,
              help="The scale worker's workflow cache (worker.py's default).")
def bench(quick: bool, json_path: Path | None, database_url: str, profile_dir: Path | None,
          max_cached: int) -> None:
    """Measure intake, lifecycle throughput, cost per lifecycle, scale and messages."""
    from cli.common import settings_or_fail

    settings = settings_or_fail()
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    try:
        figures = asyncio.run(run_bench(quick, database_url, settings.templates_dir, profile_dir,
                                        max_cached, say=lambda m: click.echo(f"… {m}", err=True)))
    except RuntimeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(table(figures))
    if json_path:
        write_json(figures, json_path)
        click.echo(f"figures written to {json_path}")
    started_all = figures["intake_lifecycles_started"] == figures["intake_accepted"]
    all_events = figures["events_recorded"] == figures["events"]
    if not (figures["lifecycles_complete"] and started_all and all_events):
        click.echo("error: some lifecycles did not do their whole job: figures not valid", err=True)
        sys.exit(1)
