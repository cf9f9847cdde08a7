"""Data peek: ``tel.sample(split_id, rows)`` records a few output rows of a split,
``job.samples()`` reads them back, and the lineage view's split detail shows them —
through a real recording in a Lance store, with the expected values written out by hand.
"""

from __future__ import annotations

import datetime
import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import solstice_inspect as si
from solstice_inspect.errors import NotFound
from solstice_inspect.recorder import samples as client
from solstice_inspect.recorder.client import Telemetry

JOB = "peek"
T0 = 1_764_331_200.0
WORKER = "parse_w0_a1b2c3"


@pytest.fixture
def rec(store):
    rec = store.record(JOB, dag_edges={"source": ["parse"]}, flush_interval=0.1)
    yield rec
    rec.finish("COMPLETED")


def telemetry(rec, **options) -> Telemetry:
    return Telemetry(JOB, rec.ingest, stage_id="parse", worker_id=WORKER, **options)


def finish(store, rec, tel: Telemetry) -> si.Job:
    assert tel.flush(timeout=10)
    rec.finish("COMPLETED")
    return store.job(JOB)


def test_seven_rows_sent_five_stored_with_split_stage_and_worker(store, rec):
    tel = telemetry(rec)
    tel.split_processed("parse_s0", ["s0"], output_records=7, processing_time=0.1)
    tel.sample("parse_s0", [{"user": f"u{i}", "n": i} for i in range(7)])
    job = finish(store, rec, tel)

    df = job.samples("parse_s0")

    assert df[["user", "n"]].to_dict("records") == [{"user": f"u{i}", "n": i} for i in range(5)]
    assert df["sample_row"].tolist() == [0, 1, 2, 3, 4]
    assert set(df["split_id"]) == {"parse_s0"}
    assert set(df["stage_id"]) == {"parse"}
    assert set(df["worker_id"]) == {WORKER}
    assert not df["truncated"].any()
    assert job.rejects().empty


def test_a_producer_that_bypasses_the_client_is_cut_to_five_rows_by_the_recorder(store):
    rows = [{"i": i} for i in range(7)]
    with store.record(JOB) as rec:
        rec.ingest(si.envelope("sample", JOB, WORKER, T0, {"split_id": "s", "rows": rows}))
    df = store.job(JOB).samples()
    assert df["i"].tolist() == [0, 1, 2, 3, 4]
    assert df["truncated"].all()  # the reader is told the sample was cut


def test_dataframe_and_arrow_rows_become_json_values(store, rec):
    tel = telemetry(rec)
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime([T0, T0 + 1.5], unit="s", utc=True),
            "count": np.array([3, 4], dtype=np.int64),
            "score": [0.25, np.nan],
            "raw": [b"\x01\x02\x03", bytes(range(40))],
            "embedding": [np.arange(30, dtype=np.float32), np.zeros(2)],
            "tags": [{"a": np.int32(1)}, {"b": None}],
        }
    )
    tel.sample("parse_df", frame)
    arrow = pa.table(
        {
            "ts": pa.array([1_764_331_200_000_000], pa.timestamp("us", tz="UTC")),
            "blob": pa.array([b"\xff\x00"], pa.binary()),
            "d": pa.array([datetime.date(2025, 11, 28)], pa.date32()),
            "x": pa.array([1.5], pa.float64()),
        }
    )
    tel.sample("parse_arrow", arrow)
    tel.sample("parse_batch", arrow.to_batches()[0])
    job = finish(store, rec, tel)

    df = job.samples("parse_df")
    assert df["when"].tolist() == ["2025-11-28T12:00:00+00:00", "2025-11-28T12:00:01.500000+00:00"]
    assert df["count"].tolist() == [3, 4]
    assert df["score"].iloc[0] == 0.25
    assert pd.isna(df["score"].iloc[1])
    assert df["raw"].tolist() == [
        "<3 bytes: 010203>",
        "<40 bytes: 000102030405060708090a0b0c0d0e0f…>",
    ]
    # an embedding keeps its first 20 numbers and says how many more there were
    assert df["embedding"].iloc[0] == [float(i) for i in range(20)] + ["… 10 more items"]
    assert df["embedding"].iloc[1] == [0.0, 0.0]
    assert df["tags"].tolist() == [{"a": 1}, {"b": None}]
    for split in ("parse_arrow", "parse_batch"):
        row = job.samples(split).iloc[0]
        assert row["row.ts"] == "2025-11-28T12:00:00+00:00"  # ``ts`` is the sample's own
        assert row["blob"] == "<2 bytes: ff00>"
        assert row["d"] == "2025-11-28"
        assert row["x"] == 1.5
    assert job.rejects().empty


def test_the_client_never_raises_on_values_it_cannot_serialise(store, rec):
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no repr for you")

        __str__ = __repr__

    class Named:
        def __str__(self):
            return "named-thing"

    def broken_rows():
        yield {"ok": 1}
        raise OSError("disk gone mid-iteration")

    tel = telemetry(rec)
    calls = [
        ("s_hostile", [{"bad": Hostile(), "named": Named(), ("tuple", "key"): 1}]),
        ("s_surrogate", [{"text": "half \ud800 a pair", "inf": float("inf")}]),
        ("s_scalar", 42),
        ("s_none", None),
        ("s_broken", broken_rows()),
        ("s_deep", [{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}]),
    ]
    for split, rows in calls:
        assert tel.sample(split, rows) is None  # returns at once, raises nothing
    tel.sample(None, [{"x": 1}])  # type: ignore[arg-type]  # no split: nothing to file it under
    job = finish(store, rec, tel)

    assert job.rejects().empty  # everything it sent passed the recorder's checks
    hostile = job.samples("s_hostile").iloc[0]
    assert hostile["bad"] == "<unprintable Hostile>"
    assert hostile["named"] == "named-thing"
    assert hostile["('tuple', 'key')"] == 1
    surrogate = job.samples("s_surrogate").iloc[0]
    assert surrogate["text"] == "half ? a pair"
    assert surrogate["inf"] == "inf"
    assert job.samples("s_scalar")["value"].tolist() == [42]
    assert job.samples("s_deep").iloc[0]["a"] == {"b": {"c": {"d": {"e": {"f": "<dict>"}}}}}
    # the generator that failed and the sample without a split sent nothing and were
    # counted, not raised
    assert tel.stats()["failures"] == 2
    assert set(job.samples()["split_id"]) == {"s_hostile", "s_surrogate", "s_scalar", "s_deep"}


def test_a_sample_is_capped_in_characters_on_the_client(store, rec):
    tel = telemetry(rec)
    wide = {f"field_{i:02d}": "x" * 5_000 for i in range(40)}  # 200,000 characters a row
    tel.sample("s_wide", [wide, wide])
    tel.sample("s_long", [{"text": "y" * 100_000}])
    sent_text = json.dumps(client.json_rows([wide, wide]), ensure_ascii=False)
    assert len(sent_text) <= client.SAMPLE_CHARS
    job = finish(store, rec, tel)

    long = job.samples("s_long").iloc[0]["text"]
    assert long == "y" * 1_000 + "… [99,000 more chars]"
    rows = job.samples("s_wide")
    assert len(rows) >= 1
    assert not rows["truncated"].any()  # it fitted: nothing the reader cannot parse
    assert rows["field_00"].iloc[0].startswith("x" * 40)
    assert "more chars]" in rows["field_00"].iloc[0]


def test_a_hot_loop_is_rate_capped_and_a_split_never_gets_more_than_five_rows(store, rec):
    tel = telemetry(rec)
    tel.sample("s_twice", [{"i": i} for i in range(3)])
    tel.sample("s_twice", [{"i": i} for i in range(3, 7)])  # only 2 more fit
    tel.sample("s_twice", [{"i": 99}])  # full: nothing
    started = time.monotonic()
    for n in range(20_000):
        tel.sample(f"hot_{n}", [{"n": n}])
    elapsed = time.monotonic() - started
    job = finish(store, rec, tel)

    assert job.samples("s_twice")["i"].tolist() == [0, 1, 2, 3, 4]
    hot = job.samples()
    hot = hot[hot["split_id"].str.startswith("hot_")]
    # a burst of 10 (two went to s_twice), then one per second of the loop
    assert 1 <= len(hot) <= client.SAMPLE_BURST - 2 + elapsed / client.SAMPLE_EVERY + 1
    assert hot["n"].tolist()[:8] == list(range(8))


def test_the_split_detail_shows_the_sampled_rows_escaped(store, rec):
    evil = "<script>alert(1)</script>"
    tel = telemetry(rec)
    tel.split_processed("parse_s1", ["s1"], output_records=2, processing_time=0.2)
    tel.sample("parse_s1", [{"user": "ann", evil: "<img src=x onerror=alert(2)>"},
                            {"user": "bob", "note": "x" * 500}])  # fmt: skip
    job = finish(store, rec, tel)

    view = si.lineage_view(job, "parse_s1")
    page = view.detail.value
    assert "Sampled output rows (2)" in page
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the field name, as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the value, as text
    assert "ann" in page
    assert "bob" in page
    assert WORKER in page
    assert "x" * 199 + "…" in page
    assert "x" * 201 not in page
    assert "<script" not in view._repr_html_()


def test_unknown_split_or_stage_names_the_closest(store, rec):
    tel = telemetry(rec)
    tel.split_processed("parse_s1", ["s1"], processing_time=0.2)
    tel.sample("parse_s1", [{"a": 1}])
    job = finish(store, rec, tel)
    assert job.samples("s1").empty  # a known split (a parent) with no sample: no rows
    with pytest.raises(NotFound, match=r"no split 'parse_s2'.*parse_s1"):
        job.samples("parse_s2")
    with pytest.raises(NotFound, match=r"no stage 'pasre'.*parse"):
        job.samples(stage="pasre")
    with pytest.raises(TypeError, match="stage"):
        job.samples(stages="parse")  # type: ignore[call-arg]


def test_the_demo_worker_samples_every_tenth_split():
    from solstice_inspect.demo.workers import StageWorker

    batches: list[list[dict]] = []
    tel = Telemetry("demo", batches.append, stage_id="source", worker_id="source_w0_aaaaaa")
    worker = StageWorker("source", "source_w0_aaaaaa", tel, partitions=[0],
                         options={"split_size": 8})  # fmt: skip
    for i in range(12):
        worker.process(f"source_split_{i}", [], None)
    assert tel.flush(timeout=10)
    samples = [e["payload"] for b in batches for e in b if e["message_type"] == "sample"]
    assert [s["split_id"] for s in samples] == ["source_split_0", "source_split_10"]
    assert all(len(s["rows"]) == 5 for s in samples)
    assert samples[0]["rows"][0]["event_id"]  # the source's own records
