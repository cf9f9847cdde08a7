"""``solstice-inspect doctor``: is every table of every attempt readable?

The old web UI's ``/health``, for a store: the catalog and each attempt's tables are
opened and read back whole (:func:`~solstice_inspect.store.health.table_health`), with
their versions, fragments and size on disk; attempts that are LOST, or that have a
folder but no catalog row (never finished, never listed), are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from solstice_inspect.api import Store
from solstice_inspect.errors import InspectError
from solstice_inspect.store import layout
from solstice_inspect.store.health import (
    TableHealth,
    attempts_on_disk,
    table_health,
    tables_on_disk,
)

__all__ = ["Diagnosis", "diagnose", "render"]

#: the status of an attempt that has a folder but no catalog row
NOT_IN_CATALOG = "NOT IN CATALOG"


@dataclass
class Diagnosis:
    """What :func:`diagnose` found: one row per table, and the damaged ones."""

    root: str
    tables: pd.DataFrame  # job_id, attempt_id, status, table, rows, version, versions, …
    catalog: TableHealth
    notes: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> pd.DataFrame:
        """Tables that could not be read: job_id, attempt_id, table, error."""
        bad = self.tables.loc[
            self.tables["error"].notna(), ["job_id", "attempt_id", "table", "error"]
        ]
        return pd.DataFrame(bad).reset_index(drop=True)

    @property
    def ok(self) -> bool:
        """Whether the catalog and every table read back whole."""
        return self.catalog.ok and self.damaged.empty

    def attempts(self) -> pd.DataFrame:
        """One row per attempt: status, tables ok / present, rows, versions, fragments, size."""
        t = self.tables
        cols = ["job_id", "attempt_id", "status", "tables", "ok", "rows", "versions",
                "fragments", "size_bytes"]  # fmt: skip
        if t.empty:
            return pd.DataFrame(columns=cols)
        g = t.groupby(["job_id", "attempt_id"], sort=False)
        out = g.agg(
            status=("status", "first"),
            tables=("table", lambda s: int(s.notna().sum())),
            ok=("error", lambda s: int(s.isna().sum())),
            rows=("rows", "sum"),
            versions=("versions", "sum"),
            fragments=("fragments", "sum"),
            size_bytes=("size_bytes", "sum"),
        ).reset_index()
        no_tables = g["table"].apply(lambda s: s.isna().all()).to_numpy()
        out.loc[no_tables, "ok"] = 0
        return pd.DataFrame(out[cols])


def diagnose(store: Store, *, read: bool = True) -> Diagnosis:
    """Check the catalog and every table of every attempt of ``store``.

    Parameters
    ----------
    store
        The store.
    read
        Read every row back (finds missing or damaged data files); without it only the
        manifests are opened (fast: versions, fragments and row counts).

    Examples
    --------
    >>> import solstice_inspect as si, tempfile
    >>> store = si.connect(tempfile.mkdtemp())
    >>> with store.record("etl") as rec:
    ...     _ = rec.ingest(si.envelope("log", "etl", "w0", 1764331200.0, {"message": "hi"}))
    >>> d = diagnose(store)
    >>> d.ok, sorted(d.tables["table"])
    (True, ['catalog', 'events', 'job', 'logs'])
    """
    root = store.root
    catalog = table_health(layout.catalog_uri(root), read=read)
    notes = []
    listed: dict[tuple[str, str], str] = {}
    if catalog.ok:
        try:
            df = store.jobs(all_attempts=True)
            listed = {
                (str(j), str(a)): str(s)
                for j, a, s in zip(df["job_id"], df["attempt_id"], df["status"])
            }
        except (InspectError, OSError, ValueError) as exc:
            notes.append(f"the catalog opened but its attempts could not be listed: {exc}")
    on_disk = attempts_on_disk(root)
    keys = list(dict.fromkeys([*sorted(listed), *on_disk]))
    rows = [_row("", "", "", "catalog", catalog)]
    for job_id, attempt_id in keys:
        status = listed.get((job_id, attempt_id), NOT_IN_CATALOG)
        names = tables_on_disk(root, job_id, attempt_id)
        if not names:
            rows.append(_row(job_id, attempt_id, status, None, None))
        for name in names:
            uri = layout.table_uri(root, job_id, attempt_id, name)
            health = table_health(uri, read=read)
            if layout.is_uri(root) and health.error and "not found" in health.error.lower():
                continue  # an object store lists no folders: a table not written
            rows.append(_row(job_id, attempt_id, status, name, health))
    for (job_id, attempt_id), status in listed.items():
        if status == "LOST":
            notes.append(f"job {job_id} attempt {attempt_id} is LOST: its recorder is gone")
    for job_id, attempt_id in on_disk:
        if (job_id, attempt_id) not in listed and catalog.ok:
            notes.append(
                f"job {job_id} attempt {attempt_id} has a folder but no catalog row: "
                "it never finished starting (or the catalog lost it)"
            )
    return Diagnosis(root, pd.DataFrame(rows), catalog, notes)


def _row(
    job_id: str, attempt_id: str, status: str, table: str | None, h: TableHealth | None
) -> dict[str, object]:
    return {
        "job_id": job_id,
        "attempt_id": attempt_id,
        "status": status,
        "table": table,
        "rows": None if h is None else h.rows,
        "version": None if h is None else h.version,
        "versions": None if h is None else h.versions,
        "fragments": None if h is None else h.fragments,
        "size_bytes": None if h is None else h.size_bytes,
        "error": None if h is None else h.error,
    }


def _size(n: object) -> str:
    if n is None or pd.isna(n):  # type: ignore[arg-type]
        return "—"
    value = float(n)  # type: ignore[arg-type]
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def render(d: Diagnosis, *, tables: bool = False) -> str:
    """The report printed by the command: attempts (or every table), then the problems."""
    lines = [f"store {d.root}"]
    cat = d.catalog
    state = "ok" if cat.ok else "DAMAGED"
    lines.append(
        f"catalog: {state}, {cat.rows if cat.rows is not None else '—'} rows, version "
        f"{cat.version if cat.version is not None else '—'}, {cat.fragments or 0} fragments, "
        f"{_size(cat.size_bytes)}"
    )
    if tables:
        shown = d.tables[d.tables["table"].notna() & (d.tables["table"] != "catalog")].copy()
        shown["size"] = shown["size_bytes"].map(_size)
        shown["state"] = shown["error"].map(lambda e: "ok" if e is None else "DAMAGED")
        cols = ["job_id", "attempt_id", "status", "table", "rows", "version", "versions",
                "fragments", "size", "state"]  # fmt: skip
        body = shown[cols]
    else:
        body = d.attempts()
        body["size"] = body["size_bytes"].map(_size)
        body["tables ok"] = [f"{o}/{t}" for o, t in zip(body["ok"], body["tables"])]
        body = body[["job_id", "attempt_id", "status", "tables ok", "rows", "versions",
                     "fragments", "size"]]  # fmt: skip
    if len(body):
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            lines.append(body.to_string(index=False))
    else:
        lines.append("no attempts")
    damaged = d.damaged
    if not cat.ok:
        lines.append(f"DAMAGED catalog ({layout.catalog_uri(d.root)}): {cat.error}")
    for row in damaged.to_dict("records"):
        if row["table"] == "catalog":
            continue
        lines.append(
            f"DAMAGED job {row['job_id']} attempt {row['attempt_id']} table {row['table']}:"
            f" {row['error']}"
        )
    lines.extend(d.notes)
    n_bad = len(damaged)
    lines.append("all tables read back whole" if d.ok else f"{n_bad} damaged table(s)")
    return "\n".join(lines)
