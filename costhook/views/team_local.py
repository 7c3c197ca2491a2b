"""The team's spend as this machine knows it without the network — `team_spend` of the last
pull plus this machine's calls not yet pushed (docs/team.md, the budget contract) — for the
vault dashboard's team section."""

from costhook import timeframe
from costhook.store import team as local
from costhook.views.report import usd


def team_rollup(conn, now, tz) -> dict | None:
    """Today's and this month's team spend, per user and per machine (this month's
    biggest first), and when it was last pulled; None while this machine is not linked
    to a team (no `[team]`, or no sync yet)."""
    link = conn.execute("SELECT enabled, team_user, machine, last_pull FROM team_link WHERE id = 1").fetchone()
    if link is None or not link[0]:
        return None
    _, me, machine, last_pull = link
    totals, per = {}, {"user": {}, "machine": {}}
    for name in ("today", "month"):
        period = timeframe.period(name, now, tz)
        first, last = period.buckets()
        unpushed = local.unpushed_nanousd(conn, period.window().start)
        totals[name] = _sum(conn, "global", first, last).get("", 0) + unpushed
        for dim, mine in (("user", me), ("machine", machine)):
            spent = _sum(conn, dim, first, last)
            if unpushed:
                spent[mine] = spent.get(mine, 0) + unpushed
            for key, value in spent.items():
                per[dim].setdefault(key, {"today": 0, "month": 0})[name] = value
    rows = {dim: sorted(({"key": k, "today_usd": usd(v["today"]), "month_usd": usd(v["month"])} for k, v in keys.items()),
                        key=lambda r: (-r["month_usd"], r["key"])) for dim, keys in per.items()}
    return {"today_usd": usd(totals["today"]), "month_usd": usd(totals["month"]), "last_pull": last_pull,
            "user": me, "machine": machine, "users": rows["user"], "machines": rows["machine"]}


def _sum(conn, dim: str, first: str, last: str) -> dict:
    sql = "SELECT key, sum(cost_nanousd) FROM team_spend WHERE dim = ? AND bucket >= ? AND bucket < ? GROUP BY key"
    return {k: int(v) for k, v in conn.execute(sql, (dim, first, last))}
