"""`loyalloop bench`: every figure, side by side, in one run on one Temporal dev server."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import events, intake, lifecycles, messages, scale
from bench.cluster import connect, dev_server, fresh_database, server_apart
from database.session import make_engine, make_sessionmaker


@dataclass(frozen=True)
class Sizes:
    purchases: int
    lifecycles: int
    open_lifecycles: int
    seconds_per_message_figure: float
    event_batches: int


QUICK = Sizes(purchases=1000, lifecycles=600, open_lifecycles=1000, seconds_per_message_figure=1,
              event_batches=20)
FULL = Sizes(purchases=2000, lifecycles=1000, open_lifecycles=10_000,
             seconds_per_message_figure=3, event_batches=60)


async def run_bench(
    quick: bool, database_url: str, templates_dir: Path, profile_dir: Path | None,
    max_cached: int, say=print,  # type: ignore[no-untyped-def]
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    began = time.perf_counter()
    figures: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average_at_start": os.getloadavg()[0],
    }
    say(f"messages: rendering and sending for {sizes.seconds_per_message_figure:g} s each")
    found = messages.run(templates_dir, sizes.seconds_per_message_figure)
    figures |= {
        "renders_per_s": round(found.renders_per_s, 1),
        "sends_per_s": round(found.sends_per_s, 1),
        f"sends_per_s_{found.send_threads}_threads": round(found.sends_per_s_threads, 1),
    }
    async with dev_server() as (address, server):
        client = await connect(address)
        with fresh_database(database_url) as url:
            engine = make_engine(url)
            sessions = make_sessionmaker(engine)
            try:
                say(f"intake: {sizes.purchases} purchases over HTTP and as direct starts, "
                    "the Temporal server on cores of its own")
                profile = profile_dir / "intake.speedscope.json" if profile_dir else None
                with server_apart(server) as cores:
                    got = await intake.run(client, address, url, sizes.purchases, profile)
                say("intake: again, every process on every core")
                shared = await intake.run(client, address, url, sizes.purchases)
                figures |= {
                    "purchases": got.purchases,
                    "intake_cores": cores,
                    "intake_per_s": round(got.intake_per_s, 1),
                    "direct_start_per_s": round(got.direct_per_s, 1),
                    "intake_ratio": round(got.ratio, 3),
                    "intake_cpu_ms_per_purchase": round(got.intake_cpu_ms, 2),
                    "intake_accepted": got.accepted + shared.accepted,
                    "intake_lifecycles_started": got.started_by_intake + shared.started_by_intake,
                    "direct_lifecycles_started": got.started_directly + shared.started_directly,
                    "shared_cores_intake_per_s": round(shared.intake_per_s, 1),
                    "shared_cores_direct_start_per_s": round(shared.direct_per_s, 1),
                    "shared_cores_intake_ratio": round(shared.ratio, 3),
                    "shared_cores_intake_cpu_ms_per_purchase": round(shared.intake_cpu_ms, 2),
                }
                say(f"events: {sizes.event_batches} signed batches of {events.BATCH} SendGrid "
                    "events over HTTP")
                ingested = await events.run(address, url, sessions, sizes.event_batches)
                figures |= {
                    "events": ingested.events,
                    "events_recorded": ingested.recorded,
                    "events_per_s": round(ingested.per_s, 1),
                    "events_goal_per_s": events.GOAL_PER_S,
                    "events_ratio": round(ingested.per_s / events.GOAL_PER_S, 3),
                    "events_cpu_ms_per_1000": round(ingested.cpu_ms_per_1000, 1),
                }
                say(f"lifecycles: {sizes.lifecycles} on Loyalloop's worker and on the baseline's")
                profile = profile_dir / "worker.speedscope.json" if profile_dir else None
                real, base = await lifecycles.side_by_side(
                    client, address, sessions, url, sizes.lifecycles, profile=profile,
                    server_pid=server.pid,
                )
                figures |= _lifecycle_figures(real, base)
                say(f"scale: {sizes.open_lifecycles} open lifecycles, one signal to each")
                profile = profile_dir / "scale-worker.speedscope.json" if profile_dir else None
                wide = await scale.run(client, address, sessions, url, sizes.open_lifecycles,
                                       max_cached, profile=profile)
                figures |= {
                    "open_lifecycles": wide.open_lifecycles,
                    "open_lifecycles_started_s": round(wide.open_s, 1),
                    "open_worker_cpu_s": round(wide.open_cpu_s, 1),
                    "fanout_worker_cpu_s": round(wide.fanout_cpu_s, 1),
                    "worker_rss_open_mb": round(wide.rss_open_mb, 1),
                    "worker_peak_rss_mb": round(wide.peak_rss_mb, 1),
                    "signal_fanout_s": round(wide.signal_fanout_s, 2),
                    "signals_accepted_s": round(wide.signals_accepted_s, 2),
                    "worker_max_cached_workflows": wide.max_cached_workflows,
                }
            finally:
                engine.dispose()
    figures["bench_seconds"] = round(time.perf_counter() - began, 1)
    return figures


def _lifecycle_figures(real: lifecycles.Throughput, base: lifecycles.Throughput) -> dict[str, Any]:
    return {
        "lifecycles": real.lifecycles,
        "lifecycles_verified": real.verified,
        "lifecycles_complete": real.complete,
        "lifecycles_per_s": round(real.per_s, 2),
        "baseline_lifecycles_per_s": round(base.per_s, 2),
        "lifecycle_ratio": round(real.per_s / base.per_s, 3),
        "worker_cpu_s_per_1000": round(real.cpu_per_1000, 1),
        "baseline_worker_cpu_s_per_1000": round(base.cpu_per_1000, 1),
        "server_cpu_ms_per_lifecycle": round(real.server_cpu_ms, 1),
        "baseline_server_cpu_ms_per_lifecycle": round(base.server_cpu_ms, 1),
        "database_cpu_ms_per_lifecycle": round(real.database_cpu_ms, 1),
        "baseline_database_cpu_ms_per_lifecycle": round(base.database_cpu_ms, 1),
        "lifecycle_worker_peak_rss_mb": round(real.peak_rss_mb, 1),
        "db_statements_per_lifecycle": round(real.db_statements_per_lifecycle, 2),
        "db_commits_per_lifecycle": round(real.db_commits_per_lifecycle, 2),
        "history_events_per_lifecycle": real.cost.events_per_lifecycle,
        "baseline_history_events": base.cost.events_per_lifecycle,
        "history_bytes_per_lifecycle": real.cost.bytes_per_lifecycle,
        "baseline_history_bytes": base.cost.bytes_per_lifecycle,
        "actions_per_lifecycle": real.cost.actions_per_lifecycle,
        "baseline_actions_per_lifecycle": base.cost.actions_per_lifecycle,
        "actions_breakdown": real.cost.breakdown(),
        "baseline_actions_breakdown": base.cost.breakdown(),
    }


ROWS = [
    ("Intake, purchases/s (HTTP vs direct start)", "intake_per_s", "direct_start_per_s",
     "intake_ratio", "≥ 0.9"),
    ("  same, server sharing the intake's cores", "shared_cores_intake_per_s",
     "shared_cores_direct_start_per_s", "shared_cores_intake_ratio", ""),
    ("Intake CPU ms per purchase (own; shared cores)", "intake_cpu_ms_per_purchase",
     "shared_cores_intake_cpu_ms_per_purchase", None, ""),
    ("SendGrid events/s, signed batches of 1,000 (goal)", "events_per_s", "events_goal_per_s",
     "events_ratio", "≥ 5,000"),
    ("  intake CPU ms per 1,000 events", "events_cpu_ms_per_1000", None, None, ""),
    ("Complete lifecycles/s (Loyalloop vs baseline)", "lifecycles_per_s",
     "baseline_lifecycles_per_s", "lifecycle_ratio", "≥ 0.7"),
    ("Worker CPU s per 1,000 lifecycles", "worker_cpu_s_per_1000",
     "baseline_worker_cpu_s_per_1000", None, ""),
    ("  Temporal server CPU ms per lifecycle", "server_cpu_ms_per_lifecycle",
     "baseline_server_cpu_ms_per_lifecycle", None, ""),
    ("  PostgreSQL CPU ms per lifecycle", "database_cpu_ms_per_lifecycle",
     "baseline_database_cpu_ms_per_lifecycle", None, ""),
    ("History events per lifecycle", "history_events_per_lifecycle", "baseline_history_events",
     None, ""),
    ("History bytes per lifecycle", "history_bytes_per_lifecycle", "baseline_history_bytes", None,
     ""),
    ("Billable actions per lifecycle", "actions_per_lifecycle", "baseline_actions_per_lifecycle",
     None, ""),
    ("Database statements per lifecycle (commits)", "db_statements_per_lifecycle",
     "db_commits_per_lifecycle", None, "(commits)"),
    ("Open lifecycles on one worker", "open_lifecycles", None, None, ""),
    ("Worker peak RSS, MB (all open, after fan-out)", "worker_peak_rss_mb", None, None, ""),
    ("Repeat-purchase signal to all, s (credited)", "signal_fanout_s", "signals_accepted_s", None,
     "(accepted)"),
    ("Template renders/s", "renders_per_s", None, None, ""),
    ("SendGrid sends/s vs local mock (1 thread)", "sends_per_s", None, None, ""),
]


def table(figures: dict[str, Any]) -> str:
    lines = [f"Loyalloop benchmark ({figures['mode']}; {figures['machine']}; "
             f"load {figures['load_average_at_start']:.1f} at start)",
             f"{'figure':<48} {'Loyalloop':>11} {'reference':>11} {'ratio':>7}  goal",
             "-" * 86]
    for label, key, ref, ratio, goal in ROWS:
        ref_text = f"{figures[ref]:>11}" if ref else " " * 11
        ratio_text = f"{figures[ratio]:>7}" if ratio else " " * 7
        lines.append(f"{label:<48} {figures[key]:>11} {ref_text} {ratio_text}  {goal}")
    lines.append("-" * 86)
    lines.append(f"events: {figures['events_recorded']} of {figures['events']} recorded once")
    lines.append(f"lifecycles checked: {figures['lifecycles_verified']}; intake: "
                 f"{figures['intake_accepted']} accepted, {figures['intake_lifecycles_started']} "
                 f"started ({figures['direct_lifecycles_started']} direct)")
    if figures["mode"] == "quick":
        lines.append(f"quick run: {figures['lifecycles']} lifecycles, {figures['purchases']} "
                     f"purchases, {figures['open_lifecycles']} open lifecycles (not 10,000)")
    lines.append(f"took {figures['bench_seconds']} s")
    return "\n".join(lines)


def write_json(figures: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(figures, indent=2) + "\n")
