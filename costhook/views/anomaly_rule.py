"""The one anomaly rule, for days, sessions and cron runs alike (docs/views.md, "anomalies").

A day, session or cron run is an anomaly when it costs at least 2× the average of the ones
of its kind just before it — the 7 previous days, the sessions started in the 7 days
before it, or the same cron's 10 previous runs — once at least 3 of those exist (for
days, 3 with spend), and, for days and sessions, when it costs at least $0.10.

`is_anomaly` is the rule; the window is the kind's. Unifying the windows (a cron's last
10 runs vs 7 days) would change which runs are flagged, so they stay per kind.
"""

from costhook.text import usd

ANOMALY_FACTOR = 2  # at least 2x the average of its kind's window
ANOMALY_MIN_NANO = 100_000_000  # ... and at least $0.10 for days and sessions (below that nobody cares)
ANOMALY_MIN_BASELINE = 3  # days with spend / sessions / runs needed for a baseline
CRON_RUNS_WINDOW = 10  # a cron run is judged against the same cron's 10 previous runs


# Printed by `costhook anomalies` and the dashboard.
ANOMALY_RULE = (f"A day, session or cron run that costs at least {ANOMALY_FACTOR}x the average of the ones of its kind "
                f"just before it (days: the 7 previous days; sessions: those started in the 7 days before it; "
                f"cron runs: the same job's {CRON_RUNS_WINDOW} previous runs), and, for days and sessions, at least "
                f"{usd(ANOMALY_MIN_NANO)}; a baseline needs {ANOMALY_MIN_BASELINE} days, sessions or runs.")


def is_anomaly(cost, baseline: float, factor: float = ANOMALY_FACTOR, min_cost: int = ANOMALY_MIN_NANO) -> bool:
    """The rule: `cost` is at least `factor` x the `baseline` average of its kind's window,
    and at least `min_cost` (cron runs pass 0)."""
    return baseline > 0 and cost >= min_cost and cost >= factor * baseline
