"""Where each budget stands: spent, limit, projection and the alerts of its period."""

from datetime import datetime

from costhook import budgets
from costhook.views.report import usd


def budget_status(conn, cfg: dict, now: datetime, tz) -> list:
    """Each configured calendar budget's standing (session budgets need a session: the
    latest one), its projection and the alerts fired in its current period."""
    latest = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()
    ctx = budgets.Context(session_id=latest[0] if latest else None)
    out = []
    for b in cfg.get("budgets", []):
        status = budgets.spend(conn, b, ctx, now, tz)
        projected = budgets.projection(status, now)
        tokens = status.in_tokens
        scale = (lambda v: v) if tokens else usd
        alerts = [dict(a) for a in conn.execute(
            "SELECT threshold, action, message, created_at FROM alerts WHERE budget_id = ? AND period = ? ORDER BY created_at",
            (b["id"], status.period_key),
        )]
        out.append({
            "id": b["id"], "scope": b["scope"], "period": b["period"], "period_key": status.period_key,
            "action": b.get("action", "warn"), "unit": "tokens" if tokens else "usd",
            "spent": scale(status.spent), "limit": scale(status.limit), "fraction": round(status.fraction, 6),
            "projected": scale(projected) if projected is not None else None,
            "state": "blocking" if status.blocking else ("over" if status.fraction >= 1 else
                     ("warning" if status.fraction >= min(b.get("warn_at") or [0.8]) else "ok")),
            "message": status.message(), "alerts": alerts,
        })
    return out
