"""``solstice-inspect``: ingest, list and show jobs from a terminal."""

from __future__ import annotations

import argparse
import gzip
import importlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from solstice_inspect.api import Store, connect
from solstice_inspect.errors import InspectError


def _store(args: argparse.Namespace) -> Store:
    return connect(args.store)


def cmd_ingest(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        fh = opener(path, "rb")
        fh.peek(1) if hasattr(fh, "peek") else None  # fail now on a bad gzip header
    except OSError as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    store = _store(args)
    job_id = args.job_id
    if job_id is None:
        job_id = _first_job_id(path, opener)
        if job_id is None:
            print(f"error: no envelope with a job_id in {path}; pass --job-id", file=sys.stderr)
            return 2
    rec = store.record(job_id)
    try:
        with fh:
            rec.ingest(fh)
    except (OSError, EOFError) as exc:
        rec.close()
        print(f"error: reading {path} stopped: {exc}", file=sys.stderr)
        return 2
    final = rec.status != "RUNNING"
    if final:
        rec.finish(rec.status)
    else:
        rec.close()
    stats = rec.stats
    print(f"job {job_id} attempt {rec.attempt_id}: status {rec.status}")
    print(
        f"accepted {stats['accepted']}, duplicates {stats['duplicates']}, "
        f"rejected {stats['rejected_total']}, truncated {stats['truncated']}"
    )
    for reason, n in sorted(stats["rejected"].items(), key=lambda kv: -kv[1]):
        print(f"  rejected {n:>8} {reason}")
    if not final:
        print(
            "note: the stream has no job_completed / job_failed message; the attempt "
            "will read as LOST once its heartbeat is stale"
        )
    print(f"store: {store.root}")
    return 0


def _first_job_id(path: Path, opener) -> str | None:  # type: ignore[no-untyped-def]
    from solstice_inspect.errors import InvalidMessage
    from solstice_inspect.protocol import parse

    with opener(path, "rb") as fh:
        for i, line in enumerate(fh):
            if i > 1000:
                break
            try:
                obj = parse(line)
            except InvalidMessage:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("job_id"), str):
                return obj["job_id"]
    return None


def cmd_jobs(args: argparse.Namespace) -> int:
    df = _store(args).jobs(all_attempts=args.all_attempts)
    if df.empty:
        print(f"no jobs in {_store(args).root}")
        return 0
    cols = [
        "job_id",
        "attempt_id",
        "status",
        "start_time",
        "duration_s",
        "stages",
        "workers",
        "records_in",
        "records_out",
        "exceptions",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[cols].to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import time

    job = _store(args).job(args.job_id, attempt=args.attempt)
    snap = job.snapshot()  # the same model every view renders
    head = snap.header(now=time.time())
    print(f"job {job.job_id}  attempt {job.attempt_id}  status {head['status']}")
    if head["status_reason"]:
        print(f"  {head['status_reason']}")
    cat = snap.catalog
    elapsed = head["elapsed_s"]
    shown = "—" if elapsed is None else f"{elapsed:,.1f}"
    print(
        f"start {cat.get('start_time')}  end {cat.get('end_time')}  "
        f"{'elapsed' if head['running'] else 'duration'} {shown} s"
    )
    print(
        f"records in {_count(head['records_in'])}  out {_count(head['records_out'])}  "
        f"workers alive {_count(head['workers'])}  exceptions {_count(head['exceptions'])}"
    )
    if head["progress"] is not None:
        print(f"progress {head['progress'] * 100:.1f} %  ETA {head['eta_s']} s")
    if snap.error:
        print(f"error: {snap.error}")
    summary = snap.stage_summary()
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.1f}".format
    ):
        print("\nstages")
        print(summary[SHOW_STAGE_COLUMNS].to_string(index=False))
        from solstice_inspect.analysis.stages import bottleneck

        neck = bottleneck(summary)
        if neck:
            print(f"bottleneck: {neck}")
        workers = snap.workers().to_pandas()
        if not workers.empty:
            counts = workers["status"].fillna("—").value_counts()
            print(
                f"\nworkers: {len(workers)} seen; "
                + ", ".join(f"{k} {v}" for k, v in counts.items())
            )
            bad = workers[workers["status"].isin(["FAILED", "KILLED"])]
            for row in bad.itertuples():
                print(f"  {row.worker_id} ({row.stage_id}) {row.status}: {row.reason}")
            stale = int(workers["stale"].sum())
            if stale:
                print(f"  {stale} stopped worker(s) with stale last metrics (splits from stop)")
        groups = snap.exception_groups()
        if not groups.empty:
            print("\nexceptions")
            for row in groups.head(10).itertuples():
                print(
                    f"  {row.count:>6} x {row.exception_type}: {str(row.message)[:100]}"
                    f"  [{', '.join(row.stages)}]"
                )
                if row.hint:
                    print(f"         hint: {row.hint}")
        chk: pd.DataFrame = job.checkpoints()
        if not chk.empty:
            done = chk.loc[chk["status"] == "COMPLETED"]
            print(
                f"\ncheckpoints: {chk['checkpoint_id'].nunique()} "
                f"({done['checkpoint_id'].nunique()} completed), median duration "
                f"{done['duration_ms'].median():.0f} ms, last {chk['checkpoint_id'].iloc[-1]}"
            )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from solstice_inspect.report.document import report

    store = _store(args)
    job = store.job(args.job_id, attempt=args.attempt)
    if args.compare:
        from solstice_inspect.widgets.compare import compare

        doc = report(compare(job, *args.compare, store=store))
        default = f"{job.job_id}_compare.html"
    else:
        doc = report(job, timeline=not args.no_timeline)
        default = f"{job.job_id}.html"
    path = doc.save(args.output or default)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): open it in any browser, offline")
    return 0


SHOW_STAGE_COLUMNS = [
    "stage_id",
    "operator_type",
    "workers_alive",
    "input_records",
    "output_records",
    "output_rate",
    "queue_lag",
    "backpressure_level",
    "skew_ratio",
]


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solstice-inspect", description="Look inside Solstice jobs recorded in a store."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--store",
            default=None,
            help="store path or URI (default: $SOLSTICE_INSPECT_STORE or ./.solstice_inspect)",
        )
        return p

    p = add(
        "ingest", "Replay a JSON-lines file (.jsonl or .jsonl.gz) of envelopes as one new attempt."
    )
    p.add_argument("file")
    p.add_argument("--job-id", default=None, help="default: the job_id of the first envelope")
    p.set_defaults(func=cmd_ingest)
    p = add("jobs", "List jobs (latest attempt of each).")
    p.add_argument("--all-attempts", action="store_true", help="one row per attempt")
    p.set_defaults(func=cmd_jobs)
    p = add(
        "show",
        "Status, times, per-stage totals and rates, workers, exceptions, checkpoints of one job.",
    )
    p.add_argument("job_id")
    p.add_argument("--attempt", default=None, help="attempt id (default: the latest)")
    p.set_defaults(func=cmd_show)
    p = add("report", "Save a self-contained, offline HTML report of one job.")
    p.add_argument("job_id")
    p.add_argument("--attempt", default=None, help="attempt id (default: the latest)")
    p.add_argument("-o", "--output", default=None, help="file (default: JOB_ID.html)")
    p.add_argument("--no-timeline", action="store_true", help="leave the worker timeline out")
    p.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="JOB",
        help="compare JOB_ID (the baseline) with these jobs' latest attempts instead",
    )
    p.set_defaults(func=cmd_report)
    _add_more(sub, add)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub, add)
    return parser


#: packages that bring their own commands: each module has ``register(sub, add)`` that
#: adds its sub-commands with ``add(name, help)`` (which gives them ``--store``) and
#: imports what the command needs only when it runs
_COMMAND_MODULES: tuple[str, ...] = (
    "solstice_inspect.portal.commands",
    "solstice_inspect.ops.commands",
    "solstice_inspect.archives.commands",
    "solstice_inspect.follow.commands",
)


def _add_more(sub, add) -> None:  # type: ignore[no-untyped-def]
    """Commands that need optional parts (Ray): registered here, imported lazily."""
    p = add(
        "demo",
        "Run the reference Ray pipeline (source → parse → filter → enrich → sink) on a local"
        " Ray, recorded live, then show it.",
    )
    p.add_argument("--job-id", default=None, help="default: demo_etl (sample_etl with --sample)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds the source produces")
    p.add_argument(
        "--faults",
        action="store_true",
        help="malformed lines, a worker killed and replaced, a slow node, a split hanging 30 s",
    )
    p.add_argument(
        "--sample",
        action="store_true",
        help="no Ray: record the shipped sample stream instead of running the pipeline",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.sample:
        return _demo_sample(args)
    try:
        import ray
    except ImportError:
        print(
            "error: the demo pipeline needs Ray: pip install 'solstice-inspect[ray]'"
            " (or run `solstice-inspect demo --sample` for the recorded sample)",
            file=sys.stderr,
        )
        return 2
    from solstice_inspect.demo.pipeline import run_pipeline

    job_id = args.job_id or "demo_etl"
    store = _store(args)
    print(
        f"starting a local Ray and the demo pipeline {job_id!r} for {args.duration:g} s"
        f"{' with faults' if args.faults else ''} (store: {store.root}) ..."
    )
    if not ray.is_initialized():
        with warnings.catch_warnings():
            # Ray starts its processes with fork+exec; lance's fork warning does not apply
            warnings.filterwarnings("ignore", message="lance is not fork-safe")
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        result = run_pipeline(
            job_id=job_id,
            duration=args.duration,
            faults=args.faults,
            store=store,
            hang_s=30.0 if args.faults else 0.0,
        )
    finally:
        ray.shutdown()
    assert result.job is not None
    print(
        f"done in {result.elapsed_s:.1f} s: the sink wrote {result.sink_rows} rows to"
        f" {result.sink_uri}\n"
    )
    args.job_id = job_id
    args.attempt = result.job.attempt_id
    cmd_show(args)
    _print_next(store.root, job_id)
    return 0


def _demo_sample(args: argparse.Namespace) -> int:
    from solstice_inspect.demo.stream import SAMPLE_PATH

    args.job_id = args.job_id or "sample_etl"
    args.file = str(SAMPLE_PATH)
    code = cmd_ingest(args)
    if code:
        return code
    args.attempt = None
    print()
    cmd_show(args)
    _print_next(_store(args).root, args.job_id)
    return 0


def _print_next(root: str, job_id: str) -> None:
    notebook = Path("notebooks/quickstart.ipynb")  # there when run from a checkout (make demo)
    jupyter = Path(sys.executable).with_name("jupyter")
    print("\nnext:")
    if notebook.exists():
        print(f"  {jupyter} lab {notebook}   # the quickstart notebook")
    print(
        "  # in any notebook:\n"
        "  import solstice_inspect as si\n"
        f"  store = si.connect({root!r})\n"
        f"  si.job_monitor({job_id!r}, store=store)   # the live dashboard\n"
        f"  store.job({job_id!r}).stage_summary()\n"
        f"  solstice-inspect show {job_id} --store {root}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (InspectError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
