"""ClickHouse analytics over audit events: PnL per agent per hour, order latency
quantiles and rejections by reason, kept up to date by materialized views.

Two backends run the same SQL:

- ``chdb`` (default here): ClickHouse's engine in-process, with a persistent
  session directory. Chosen because Debian's ``clickhouse-server`` on this
  machine is 18.16 (2018), which clickhouse-connect 1.12 cannot talk to
  (``Unknown identifier: readonly`` on its first query; see README), while
  chdb 4.4 embeds ClickHouse 26.x.
- ``server``: a real ClickHouse through clickhouse-connect (``url=http://host:8123``).

``audit_events`` is a ReplacingMergeTree on ``(session, seq)``, so re-inserting
an audit segment never double-counts after merges (queries use ``FINAL``
where it matters). The views aggregate at insert time:

- ``pnl_agent_hour`` (SummingMergeTree): realized PnL, fees, fills, notional per
  agent, symbol and hour, from ``Fill`` events;
- ``order_lifecycle`` (AggregatingMergeTree): first request / ack / fill time per
  cloid, from which latency quantiles are read;
- ``rejections`` (SummingMergeTree): count per reason and agent, from rejected
  ``RiskDecision`` and ``OrderAck`` events.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

AUDIT_COLUMNS = ["session", "seq", "ts_exch", "ts_recv", "kind", "agent", "symbol", "id", "payload"]
_NUM = re.compile(r"[-+]?\d[\d.,e+-]*")


def schema_sql(db: str) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.audit_events (session String, seq UInt64, ts_exch Int64, "
        "ts_recv Int64, kind LowCardinality(String), agent LowCardinality(String), symbol LowCardinality(String), "
        "id String, payload String) ENGINE = ReplacingMergeTree ORDER BY (session, seq)",
        f"CREATE TABLE IF NOT EXISTS {db}.pnl_agent_hour (agent LowCardinality(String), "
        "symbol LowCardinality(String), hour DateTime, realized Float64, fees Float64, fills UInt64, "
        "notional Float64) ENGINE = SummingMergeTree ORDER BY (agent, symbol, hour)",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_pnl_agent_hour TO {db}.pnl_agent_hour AS "
        "SELECT agent, symbol, toStartOfHour(toDateTime(intDiv(ts_exch, 1000))) AS hour, "
        "sum(JSONExtractFloat(payload, 'closed_pnl')) AS realized, sum(JSONExtractFloat(payload, 'fee')) AS fees, "
        "count() AS fills, sum(JSONExtractFloat(payload, 'px') * JSONExtractFloat(payload, 'sz')) AS notional "
        f"FROM {db}.audit_events WHERE kind = 'Fill' GROUP BY agent, symbol, hour",
        f"CREATE TABLE IF NOT EXISTS {db}.order_lifecycle (cloid String, symbol LowCardinality(String), "
        "sent AggregateFunction(minIf, Int64, UInt8), acked AggregateFunction(minIf, Int64, UInt8), "
        "filled AggregateFunction(minIf, Int64, UInt8)) ENGINE = AggregatingMergeTree ORDER BY (cloid, symbol)",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_order_lifecycle TO {db}.order_lifecycle AS "
        "SELECT JSONExtractString(payload, 'cloid') AS cloid, symbol, "
        "minIfState(ts_recv, kind = 'OrderRequest') AS sent, "
        "minIfState(ts_recv, kind = 'OrderAck' AND JSONExtractString(payload, 'status') != 'PENDING') AS acked, "
        "minIfState(ts_recv, kind = 'Fill') AS filled "
        f"FROM {db}.audit_events WHERE kind IN ('OrderRequest', 'OrderAck', 'Fill') "
        "AND JSONExtractString(payload, 'cloid') != '' GROUP BY cloid, symbol",
        f"CREATE TABLE IF NOT EXISTS {db}.rejections (reason String, agent LowCardinality(String), "
        "n UInt64) ENGINE = SummingMergeTree ORDER BY (reason, agent)",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_rejections TO {db}.rejections AS "
        "SELECT if(kind = 'RiskDecision', "
        "  concat('risk: ', trim(replaceRegexpAll(splitByChar(':', JSONExtractString(payload, 'reason'))[1], "
        "'[-+]?[0-9][0-9.,e+-]*', '#'))), "
        "  concat('exchange: ', replaceRegexpAll(JSONExtractString(payload, 'error'), '[-+]?[0-9][0-9.,e+-]*', '#'))"
        ") AS reason, agent, count() AS n "
        f"FROM {db}.audit_events WHERE (kind = 'RiskDecision' AND NOT JSONExtractBool(payload, 'approved') "
        "AND NOT startsWith(JSONExtractString(payload, 'reason'), 'no-op')) "
        "OR (kind = 'OrderAck' AND JSONExtractString(payload, 'status') = 'REJECTED') GROUP BY reason, agent",
    ]


_SESSION: dict[str, object] = {}  # chdb allows one session (one path) per process


class _Chdb:
    def __init__(self, path: str | Path) -> None:
        from chdb import session

        path = str(Path(path).resolve())
        if _SESSION and path not in _SESSION:
            raise RuntimeError(f"chdb already has a session at {next(iter(_SESSION))}; one path per process")
        if path not in _SESSION:
            _SESSION[path] = session.Session(path)
        self.s = _SESSION[path]

    def command(self, sql: str) -> None:
        self.s.query(sql)

    def query_df(self, sql: str) -> pd.DataFrame:
        out = self.s.query(sql, "DataFrame")
        return out if isinstance(out, pd.DataFrame) else pd.DataFrame()

    def insert_df(self, table: str, df: pd.DataFrame) -> None:
        frame = df  # noqa: F841  (referenced by name in the Python() table function)
        self.s.query(f"INSERT INTO {table} SELECT * FROM Python(frame)")

    def close(self) -> None:
        """The process-wide session stays open for the next user (chdb cannot reopen cheaply)."""


class _Server:
    def __init__(self, url: str) -> None:
        import clickhouse_connect

        self.c = clickhouse_connect.get_client(dsn=url)

    def command(self, sql: str) -> None:
        self.c.command(sql)

    def query_df(self, sql: str) -> pd.DataFrame:
        return self.c.query_df(sql)

    def insert_df(self, table: str, df: pd.DataFrame) -> None:
        db, _, t = table.partition(".")
        self.c.insert_df(t, df, database=db)

    def close(self) -> None:
        self.c.close()


class AuditAnalytics:
    """Audit events in ClickHouse and the three analytic views (see module docstring)."""

    def __init__(self, path: str | Path | None = None, url: str | None = None, database: str = "hlquant") -> None:
        if not re.match(r"^[a-z_][a-z0-9_]*$", database):
            raise ValueError(f"invalid database name {database!r}")
        self.db = database
        self.backend = _Server(url) if url else _Chdb(path or ".hlquant-chdb")
        for stmt in schema_sql(database):
            self.backend.command(stmt)

    def close(self) -> None:
        self.backend.close()

    def insert_audit(self, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        df = frame[AUDIT_COLUMNS].copy()
        df["seq"] = df["seq"].astype("uint64")
        for c in ("ts_exch", "ts_recv"):
            df[c] = df[c].astype("int64")
        for c in ("session", "kind", "agent", "symbol", "id", "payload"):
            df[c] = df[c].astype(str)
        self.backend.insert_df(f"{self.db}.audit_events", df)
        return len(df)

    def events(self) -> int:
        return int(self.backend.query_df(f"SELECT count() AS n FROM {self.db}.audit_events FINAL")["n"].iloc[0])

    def pnl_per_agent_hour(self) -> pd.DataFrame:
        return self.backend.query_df(
            f"SELECT agent, symbol, hour, sum(realized) AS realized, sum(fees) AS fees, sum(fills) AS fills, "
            f"sum(notional) AS notional FROM {self.db}.pnl_agent_hour GROUP BY agent, symbol, hour "
            "ORDER BY agent, symbol, hour")

    def order_latency(self) -> pd.DataFrame:
        """Send->ack and send->first-fill latency quantiles (ms) per symbol."""
        return self.backend.query_df(
            "SELECT symbol, count() AS orders, "
            "quantile(0.5)(acked - sent) AS ack_p50, quantile(0.99)(acked - sent) AS ack_p99, "
            "max(acked - sent) AS ack_max, quantileIf(0.5)(filled - sent, filled > 0) AS fill_p50 FROM ("
            "SELECT cloid, symbol, minIfMerge(sent) AS sent, minIfMerge(acked) AS acked, minIfMerge(filled) AS filled "
            f"FROM {self.db}.order_lifecycle GROUP BY cloid, symbol) WHERE sent > 0 AND acked > 0 "
            "GROUP BY symbol ORDER BY symbol")

    def rejections_by_reason(self) -> pd.DataFrame:
        return self.backend.query_df(
            f"SELECT reason, agent, sum(n) AS n FROM {self.db}.rejections GROUP BY reason, agent "
            "ORDER BY n DESC, reason")

    def query(self, sql: str) -> pd.DataFrame:
        return self.backend.query_df(sql)


def normalize_reason(reason: str) -> str:
    """The grouping ClickHouse applies, in Python (numbers -> '#')."""
    return _NUM.sub("#", reason.split(":")[0].strip())


__all__ = ["AuditAnalytics", "schema_sql", "normalize_reason", "AUDIT_COLUMNS"]
