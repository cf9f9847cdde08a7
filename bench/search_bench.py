"""Exception search benchmark (issue 9): ``job.exceptions(search=...)`` over 1M exceptions
against pandas ``str.contains`` over the same rows, in the same run.

Not a test: it prints figures and never fails on a number. Run it with

    .venv/bin/python bench/search_bench.py [--n 1000000] [--repeat 5] [--dir DIR]
                                           [--options] [--indexes]

What it measures, alternating A and B, median of ``--repeat`` runs per query:

1. baseline: read the attempt's exceptions into pandas (``job.table(...).to_pandas()``)
   and keep the rows whose message, stack trace or type contains the text, ignoring
   case (``str.contains(case=False, regex=False)``): what a user does without a search
   argument. Its filter alone, on the DataFrame already in memory, is printed too.
2. ours: ``job.exceptions(search=text)``: the same case-insensitive substring test,
   pushed down to Lance as ``contains(lower(column), text)``.

``--options`` adds the other ways measured for issue 9, same rows, same queries: a
pushed-down ``ILIKE`` (needs ``%``/``_`` escaping), and DuckDB over the Lance dataset
(when ``duckdb`` is importable; it is not a dependency). ``--indexes`` then builds an
NGRAM index and an INVERTED (full-text) index on message and stacktrace of a copy of the
dataset (the recorder would have to build them) and times their queries: NGRAM
accelerates only *case-sensitive* ``contains``; the full-text index matches tokens, not
substrings.

The rows are generated (``make_exceptions``): 12 realistic faults (decode, JSON, S3,
CUDA OOM, timeouts…) with Python tracebacks of 5–35 frames (0.3–4.5 KB, ~2.4 KB mean; a
quarter chained through a RayTaskError), per-row ids, offsets and hashes in the
messages, fault frequencies Zipf-distributed. They are appended to a real attempt's
``exceptions`` table in 50,000-row flushes and compacted by the recorder's own
:class:`~solstice_inspect.store.dataset.DatasetWriter`. ``--dir`` keeps the store for
the next run (it is reused when it holds ``--n`` rows).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pandas as pd
import pyarrow as pa

import solstice_inspect as si
from solstice_inspect.analysis.exceptions import search_filter
from solstice_inspect.schema import SCHEMAS
from solstice_inspect.store import layout
from solstice_inspect.store.dataset import DatasetWriter

JOB = "search_bench"
T0 = 1_764_331_200.0
CHUNK = 50_000
#: (text, what it finds): in stack traces only; mixed case in messages and traces; rare
QUERIES = [
    ("decode_frame", "a function name, in stack traces only"),
    ("connection RESET", "mixed case, in messages and traces"),
    ("7f3a9", "a hash fragment: a few rows"),
]
TEXT = ["message", "stacktrace", "exception_type"]

FRAMES = [
    ("/home/ray/anaconda3/lib/python3.11/site-packages/ray/_private/worker.py", "get",
     "values, debugger_breakpoint = worker.get_objects(object_refs, timeout=timeout)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/ray/_private/function_manager.py",
     "actor_method_executor", "return method(__ray_actor, *args, **kwargs)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/ray/util/tracing/tracing_helper.py",
     "_resume_span", "return method(self, *_args, **_kwargs)"),
    ("/app/solstice/runtime/worker.py", "run_split", "out = self.operator.process(batch)"),
    ("/app/solstice/runtime/worker.py", "_poll",
     "split = self.queue.fetch(timeout=self.poll_timeout)"),
    ("/app/solstice/operators/map.py", "process", "return [self.fn(r) for r in batch]"),
    ("/app/pipeline/stages/decode.py", "decode_video",
     "frames = av.open(uri).decode(video=0)"),
    ("/app/pipeline/stages/decode.py", "decode_frame",
     "img = frame.to_ndarray(format='rgb24')"),
    ("/app/pipeline/stages/embed.py", "embed_batch",
     "emb = self.model.encode(images, batch_size=self.batch_size)"),
    ("/app/pipeline/stages/embed.py", "load_model",
     "self.model = open_clip.create_model(name, pretrained=ckpt)"),
    ("/app/pipeline/stages/parse.py", "parse_record", "doc = json.loads(line)"),
    ("/app/pipeline/stages/parse.py", "normalise",
     "return {k.lower(): v for k, v in doc['fields'].items()}"),
    ("/app/pipeline/io/s3.py", "read_object",
     "body = self.client.get_object(Bucket=bucket, Key=key)['Body'].read()"),
    ("/app/pipeline/io/s3.py", "write_parquet",
     "pq.write_table(table, sink, compression='zstd')"),
    ("/usr/lib/python3.11/json/__init__.py", "loads", "return _default_decoder.decode(s)"),
    ("/usr/lib/python3.11/json/decoder.py", "decode",
     "obj, end = self.raw_decode(s, idx=_w(s, 0).end())"),
    ("/usr/lib/python3.11/json/decoder.py", "raw_decode",
     'raise JSONDecodeError("Expecting value", s, err.value) from None'),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/botocore/client.py", "_make_api_call",
     "raise error_class(parsed_response, operation_name)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/urllib3/connectionpool.py", "urlopen",
     "retries = retries.increment(method, url, error=e, _pool=self)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/torch/nn/modules/module.py",
     "_call_impl", "return forward_call(*args, **kwargs)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/torch/cuda/memory.py", "empty_cache",
     "torch._C._cuda_emptyCache()"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/PIL/Image.py", "open",
     "raise UnidentifiedImageError(msg)"),
    ("/home/ray/anaconda3/lib/python3.11/site-packages/pyarrow/parquet/core.py",
     "write_table", "writer.write_table(table, row_group_size=row_group_size)"),
    ("/app/pipeline/stages/filter.py", "keep", "return rec['score'] > self.threshold"),
]  # fmt: skip
#: (type, message template, frames below the worker's own)
FAULTS = [
    ("ValueError", "cannot decode frame {n} of s3://media-raw/videos/{h}.mp4: moov atom "
     "not found", [3, 5, 6, 7]),
    ("json.decoder.JSONDecodeError", "Expecting value: line {n} column {m} (char {k})",
     [3, 5, 10, 14, 15, 16]),
    ("KeyError", "'fields' in record {h} of split parse_split_{n}", [3, 5, 10, 11]),
    ("TimeoutError", "timed out after {m}.0 s waiting for queue partition {n} of stage "
     "enrich", [1, 3, 4]),
    ("ConnectionResetError", "[Errno 104] Connection reset by peer while reading "
     "s3://media-raw/shards/{h}.tar", [3, 12, 18]),
    ("botocore.exceptions.ClientError", "An error occurred (SlowDown) when calling the "
     "GetObject operation (reached max retries: {m}): Please reduce your request rate.",
     [3, 12, 17]),
    ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate {m}.00 MiB (GPU 0; "
     "79.15 GiB total capacity; {n} MiB already allocated)", [1, 2, 3, 8, 19]),
    ("PIL.UnidentifiedImageError", "cannot identify image file '/tmp/ray/spill/{h}.jpg'",
     [3, 5, 21]),
    ("RuntimeError", "Worker crashed while processing split embed_decode_split_{n}: exit "
     "code {m}", [1, 3, 8, 9]),
    ("OSError", "[Errno 28] No space left on device: '/mnt/scratch/{h}.parquet'",
     [3, 13, 22]),
    ("AttributeError", "'NoneType' object has no attribute 'to_ndarray' (frame {n})",
     [3, 5, 7]),
    ("TypeError", "'>' not supported between instances of 'NoneType' and 'float' in "
     "record {h}", [3, 5, 23]),
]  # fmt: skip
STAGES = np.array(["source", "decode", "embed", "parse", "write"])


def make_exceptions(n: int, seed: int, first: int) -> pa.Table:
    """``n`` exception rows as the recorder stores them (ids from ``first``)."""
    rng = np.random.default_rng(seed)
    fault = rng.zipf(1.6, n) % len(FAULTS)
    nums = rng.integers(0, 100_000, (n, 3))
    hexes = rng.integers(0, 2**40, n)
    depth = rng.integers(0, 30, n)  # framework / recursion depth
    chained = rng.random(n) < 0.25
    lines = rng.integers(10, 3000, n)
    bodies: dict[tuple[int, int, int], str] = {}
    messages, traces, types = [], [], []
    for i in range(n):
        f = int(fault[i])
        etype, template, frames = FAULTS[f]
        a, b, c = (int(x) for x in nums[i])
        msg = template.format(n=a, m=b % 512, k=c, h=f"{int(hexes[i]):010x}")
        key = (f, int(depth[i]), int(lines[i]) % 64)
        body = bodies.get(key)
        if body is None:
            parts = ["Traceback (most recent call last):"]
            chain = [1, 3] + [3, 5] * (key[1] // 2) + frames
            for j, k in enumerate(chain):
                path, fn, code = FRAMES[k]
                parts.append(
                    f'  File "{path}", line {(key[2] * 41 + 37 * j) % 3000 + 1}, in {fn}\n'
                    f"    {code}"
                )
            body = bodies[key] = "\n".join(parts)
        trace = f"{body}\n{etype}: {msg}"
        if chained[i]:
            trace += (
                "\n\nThe above exception was the direct cause of the following exception:\n\n"
                f'Traceback (most recent call last):\n  File "{FRAMES[0][0]}", line '
                f"{lines[i]}, in get\n    {FRAMES[0][2]}\nray.exceptions.RayTaskError("
                f"{etype}): ray::Worker.run_split() (pid={a}, ip=10.0.{b % 256}.{c % 256})"
            )
        messages.append(msg)
        traces.append(trace)
        types.append(etype)
    idx = np.arange(first, first + n)
    stages = STAGES[fault % len(STAGES)]
    workers = [f"{s}_w{i % 16}_{i % 16:06x}" for s, i in zip(stages, idx)]
    return pa.table(
        {
            "job_id": pa.array([JOB] * n),
            "attempt_id": pa.array([""] * n),
            "ts": pa.array(
                (int(T0 * 1e6) + idx * 3_600).astype(np.int64), pa.timestamp("us", tz="UTC")
            ),
            "exception_id": pa.array([f"e{i}" for i in idx]),
            "fingerprint": pa.array([f"{f:016x}" for f in fault]),
            "exception_type": pa.array(types),
            "message": pa.array(messages),
            "stacktrace": pa.array(traces),
            "stage_id": pa.array(stages),
            "worker_id": pa.array(workers),
            "split_id": pa.array([f"{s}_split_{i}" for s, i in zip(stages, idx)]),
            "truncated": pa.array(np.zeros(n, dtype=bool)),
            "batch": pa.array(idx // CHUNK, pa.int64()),
        },
        schema=SCHEMAS["exceptions"],
    )


def build(root: Path, n: int) -> si.Job:
    """A finished attempt whose exceptions table holds ``n`` generated rows."""
    store = si.connect(root)
    try:
        job = store.job(JOB)
        if (
            job.version("exceptions") is not None
            and job.table("exceptions", columns=["batch"]).num_rows == n
        ):
            print(f"reusing {n:,} exceptions in {root}")
            return job
    except si.JobNotFound:
        pass
    shutil.rmtree(root, ignore_errors=True)
    store = si.connect(root)
    with store.record(JOB) as rec:
        rec.ingest(si.envelope("job_started", JOB, JOB, T0, {"dag_edges": {}}))
    job = store.job(JOB)
    uri = layout.table_uri(store.root, JOB, job.attempt_id, "exceptions")
    writer = DatasetWriter(uri, SCHEMAS["exceptions"], compact_every=0)
    started = time.perf_counter()
    for k, first in enumerate(range(0, n, CHUNK)):
        rows = make_exceptions(min(CHUNK, n - first), seed=k, first=first)
        rows = rows.set_column(1, "attempt_id", pa.array([job.attempt_id] * rows.num_rows))
        writer.append(rows)
    writer.compact()
    ds = lance.dataset(uri)
    size = sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file())
    print(
        f"built {n:,} exceptions in {time.perf_counter() - started:.0f} s: "
        f"{len(ds.get_fragments())} fragments, {size / 1e9:.2f} GB on disk"
    )
    return job


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of every thread of this process, rows found).

    On a shared machine the wall time follows the load; CPU time much less so.
    """
    started, cpu = time.perf_counter(), time.process_time()
    found = fn()
    return time.perf_counter() - started, time.process_time() - cpu, found


def contains_mask(df: pd.DataFrame, text: str) -> pd.Series:
    mask = pd.Series(False, index=df.index)
    for col in TEXT:
        mask |= df[col].str.contains(text, case=False, regex=False, na=False)
    return mask


def baseline(job: si.Job, text: str, filter_times: list[float]) -> int:
    df = job.table("exceptions").to_pandas()
    if not filter_times:
        print(
            f"  (the DataFrame of every exception: {df.memory_usage(deep=True).sum() / 1e9:.2f} GB)"
        )
    started = time.perf_counter()
    found = df[contains_mask(df, text)]
    filter_times.append(time.perf_counter() - started)
    return len(found)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("'", "''")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.platform()}, nproc {os.cpu_count()}, {mem:.0f} GiB; python "
        f"{platform.python_version()}, pylance {lance.__version__}, pyarrow {pa.__version__}, "
        f"pandas {pd.__version__}, numpy {np.__version__}\nuptime: {load}"
    )


def run(args: argparse.Namespace) -> None:
    print(machine())
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="search_bench_"))
    job = build(root, args.n)
    ds_uri = layout.table_uri(job.store.root, JOB, job.attempt_id, "exceptions")
    results: dict[str, dict[str, Any]] = {}
    for text, what in QUERIES:
        base: list[float] = []
        ours: list[float] = []
        filt: list[float] = []
        cpu: dict[str, list[float]] = {"base": [], "ours": []}
        counts: set[int] = set()
        for r in range(args.repeat):
            pair = [
                ("base", lambda t=text, f=filt: baseline(job, t, f)),
                ("ours", lambda t=text: len(job.exceptions(search=t))),
            ]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                took, spent, found = timed(fn)
                (base if name == "base" else ours).append(took)
                cpu[name].append(spent)
                counts.add(found)
        assert len(counts) == 1, f"{text!r}: the two ways disagree: {counts}"
        res = results[text] = {
            "matches": counts.pop(),
            "baseline": median(base),
            "filter_only": median(filt),
            "ours": median(ours),
            "cpu_baseline": median(cpu["base"]),
            "cpu_ours": median(cpu["ours"]),
        }
        print(
            f"{text!r} ({what}): {res['matches']:,} rows; baseline pandas (read + "
            f"str.contains) {res['baseline']:.2f} s (its filter alone {res['filter_only']:.2f}"
            f" s), job.exceptions(search=) {res['ours']:.2f} s: "
            f"{res['baseline'] / res['ours']:.1f}x faster  (runs: base "
            f"{' '.join(f'{x:.2f}' for x in base)}; ours {' '.join(f'{x:.2f}' for x in ours)})"
            f"; CPU s: baseline {res['cpu_baseline']:.2f}, ours {res['cpu_ours']:.2f} "
            f"({res['cpu_baseline'] / res['cpu_ours']:.1f}x)",
            flush=True,
        )
    if args.options:
        options(job, ds_uri, results, args.option_repeat)
    if args.indexes:
        indexes(job, ds_uri, results, args.option_repeat)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


def options(job: si.Job, uri: str, results: dict, repeat: int) -> None:
    ds = lance.dataset(uri)
    try:
        import duckdb  # not a dependency: measured when importable

        con: Any = duckdb.connect()
        con.register("exc", ds)
    except ImportError:
        con = None
        print("duckdb: not importable, skipped")
    for text, _ in QUERIES:
        ways: dict[str, Callable[[], int]] = {}
        pattern = f"'%{like_escape(text)}%'"
        ilike = " OR ".join(f"{c} ILIKE {pattern}" for c in TEXT)
        ways["lance ILIKE (escaped)"] = lambda w=ilike: job.table("exceptions", where=w).num_rows
        if con is not None:
            low = text.lower().replace("'", "''")
            sql = "SELECT * FROM exc WHERE " + " OR ".join(
                f"contains(lower({c}), '{low}')" for c in TEXT
            )
            ways["duckdb contains(lower())"] = lambda s=sql: con.sql(s).to_arrow_table().num_rows
            sql2 = "SELECT * FROM exc WHERE " + " OR ".join(
                f"{c} ILIKE {pattern} ESCAPE '\\'" for c in TEXT
            )
            ways["duckdb ILIKE"] = lambda s=sql2: con.sql(s).to_arrow_table().num_rows
        report(text, ways, results, repeat)


def indexes(job: si.Job, uri: str, results: dict, repeat: int) -> None:
    # on a copy: the store stays as the recorder left it (reusable with --dir)
    copy = str(Path(tempfile.mkdtemp(prefix="search_bench_idx_")) / "exceptions.lance")
    shutil.copytree(uri, copy)
    uri = copy
    ds = lance.dataset(uri)
    for kind in ("NGRAM", "INVERTED"):
        started = time.perf_counter()
        for col in ("message", "stacktrace"):
            ds.create_scalar_index(col, kind, name=f"{col}_{kind.lower()}")
            ds = lance.dataset(uri)
        print(f"{kind} index on message + stacktrace: built in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    size = sum(f.stat().st_size for f in Path(uri, "_indices").rglob("*") if f.is_file())
    print(f"indices on disk: {size / 1e9:.2f} GB")
    for text, _ in QUERIES:
        exact = " OR ".join(
            f"contains({c}, '{text.replace(chr(39), chr(39) * 2)}')" for c in TEXT[:2]
        )
        ours = search_filter(text, TEXT)
        ways: dict[str, Callable[[], int]] = {
            "ours' filter, indices present": lambda w=ours: (
                lance.dataset(uri).to_table(filter=w).num_rows
            ),
            "NGRAM contains() (case-sensitive!)": lambda w=exact: (
                lance.dataset(uri).to_table(filter=w).num_rows
            ),
            "INVERTED full_text_query (tokens, ranked)": lambda t=text: (
                lance.dataset(uri).to_table(full_text_query=t).num_rows
            ),
        }
        report(text, ways, results, repeat)
    shutil.rmtree(Path(uri).parent, ignore_errors=True)


def report(text: str, ways: dict[str, Callable[[], int]], results: dict, repeat: int) -> None:
    res = results[text]
    for name, fn in ways.items():
        runs = [timed(fn) for _ in range(repeat)]
        took = median([t for t, _, _ in runs])
        spent = median([c for _, c, _ in runs])
        found = runs[0][2]
        same = "same rows" if found == res["matches"] else f"{found:,} rows (not the same!)"
        print(
            f"  {text!r} {name}: {took:.2f} s (CPU {spent:.2f} s), {same}; baseline/this "
            f"{res['baseline'] / took:.1f}x, ours/this {res['ours'] / took:.2f}x (CPU "
            f"{res['cpu_ours'] / max(spent, 1e-9):.2f}x)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="exceptions (1M)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query and way (5)")
    parser.add_argument("--option-repeat", type=int, default=3, help="runs of each option (3)")
    parser.add_argument("--dir", help="keep (and reuse) the store here")
    parser.add_argument("--options", action="store_true", help="also ILIKE and DuckDB")
    parser.add_argument("--indexes", action="store_true", help="also NGRAM / INVERTED indices")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
