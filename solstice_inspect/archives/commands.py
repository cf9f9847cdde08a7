"""``solstice-inspect import-solstice PATH``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any, add: Any) -> None:
    p = add(
        "import-solstice",
        "Import jobs archived by Solstice's old web UI (JobStorage on SlateDB) into the store.",
    )
    p.add_argument("path", help="the old UI's storage directory, or one job / attempt under it")
    p.set_defaults(func=cmd_import_solstice)


def cmd_import_solstice(args: argparse.Namespace) -> int:
    from solstice_inspect.api import connect
    from solstice_inspect.archives import import_solstice

    store = connect(args.store)
    table = import_solstice(args.path, store=store)
    bad = 0
    for row in table.to_dict("records"):
        name = f"{row['job_id']} {row['attempt_id']}"
        if row["already_present"]:
            print(f"{name}: already in the store ({row['status']}), skipped")
            continue
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(row["skipped"].items()))
        print(
            f"{name}: {row['status'] or 'not imported'}, {row['keys']} keys,"
            f" {row['envelopes']} envelopes, {row['rejected']} rejected"
            + (f", skipped: {skipped}" if skipped else "")
            + (f" ({row['note']})" if row["note"] else "")
        )
        bad += bool(row["rejected"] or row["skipped"])
    print(f"store: {store.root}")
    if bad:
        print(f"note: {bad} archive(s) had values that could not be imported", file=sys.stderr)
    return 0
