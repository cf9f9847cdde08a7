"""Must hold 1 and 4: the reference pipeline with faults, asserted from the store only;
a second attempt of the same job followed live by a second process without Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import lance
import pytest

import solstice_inspect as si
from solstice_inspect.analysis.stages import bottleneck
from solstice_inspect.demo.pipeline import STAGES, run_pipeline

pytestmark = pytest.mark.ray
JOB = "demo_faults"


@pytest.fixture(scope="module")
def demo(ray_cluster, store_dir):
    started = time.monotonic()
    result = run_pipeline(job_id=JOB, duration=8, faults=True, store=store_dir)
    result.wall_s = time.monotonic() - started
    return result


def _totals(job):
    wm = job.worker_metrics()
    last = wm.sort_values(["ts", "batch"]).groupby("worker_id").last()
    return last.groupby("stage_id")[["input_records", "output_records"]].sum()


def test_demo_with_faults_runs_in_time_and_completes(demo):
    assert demo.wall_s <= 60
    job = si.connect(demo.job.store.root).job(JOB)
    assert job.status == "COMPLETED"
    assert job.info["records_out"] == demo.sink_rows


def test_stage_totals_match_what_each_stage_processed_and_the_sink_wrote(demo):
    job = demo.job
    totals = _totals(job)
    assert sorted(totals.index) == sorted(STAGES)  # every stage has metrics
    for stage in STAGES:
        assert totals.loc[stage, "input_records"] == demo.truth[stage]["input_records"], stage
        assert totals.loc[stage, "output_records"] == demo.truth[stage]["output_records"], stage
    written = lance.dataset(demo.sink_uri).count_rows()
    assert written > 1000
    assert totals.loc["sink", "output_records"] == written
    summary = job.stage_summary().set_index("stage_id")
    assert summary.loc["sink", "output_records"] == written
    # parse dropped exactly the malformed lines; filter dropped bots and app opens
    assert demo.truth["parse"]["output_records"] == (
        demo.truth["parse"]["input_records"] - demo.truth["parse"]["errors"]
    )
    assert totals.loc["filter", "output_records"] < totals.loc["filter", "input_records"]


def test_lineage_links_every_sink_split_to_a_source_split(demo):
    lineage = demo.job.lineage()
    parents = {r.split_id: list(r.parent_split_ids) for r in lineage.itertuples()}
    sinks = lineage[lineage["stage_id"] == "sink"]["split_id"]
    assert len(sinks) == demo.truth["sink"]["splits"]
    for split in sinks:
        chain = [split]
        while parents.get(chain[-1]):
            chain.append(parents[chain[-1]][0])
        assert chain[-1].startswith("source_split_"), chain
        assert len(chain) == 5, chain
    assert (
        lineage[lineage["stage_id"] == "source"]["split_id"].str.match(r"^source_split_\d+$").all()
    )


def test_injected_exceptions_have_stage_worker_and_split(demo):
    exc = demo.job.exceptions()
    assert len(exc) == demo.truth["parse"]["errors"] > 0
    assert set(exc["stage_id"]) == {"parse"}
    assert set(exc["exception_type"]) == {"JSONDecodeError"}
    expected = {(stage, worker, split) for stage, worker, split in demo.exceptions}
    got = set(zip(exc["stage_id"], exc["worker_id"], exc["split_id"], strict=True))
    assert got == expected
    assert exc["stacktrace"].str.contains("parse_record").all()
    logs = demo.job.logs()
    warned = logs[logs["message"].str.contains("malformed")]
    assert set(warned["worker_id"]) == {w for _, w, _ in demo.exceptions}
    assert logs["message"].str.startswith("slow node").sum() == 1


def test_checkpoints_carry_committed_offsets(demo):
    chk = demo.job.checkpoints()
    assert chk["checkpoint_id"].nunique() >= 3
    assert set(chk["stage_id"]) == {"parse", "filter", "enrich", "sink"}
    last = chk[chk["checkpoint_id"] == chk["checkpoint_id"].max()]
    for row in last.itertuples():
        offsets = list(row.offsets)
        assert offsets, row.stage_id
        for o in offsets:
            # the final checkpoint is taken after the queues drained: all committed
            assert o["committed_offset"] == o["latest_offset"] > 0 or o["latest_offset"] == 0
    sink_total = sum(
        o["committed_offset"] for o in next(iter(last[last.stage_id == "sink"].offsets))
    )
    assert sink_total == demo.truth["sink"]["splits"]


def test_killed_worker_has_a_failure_event_and_its_replacement_a_start(demo):
    assert len(demo.killed) == 1
    assert len(demo.replacements) == 1
    workers = demo.job.workers()
    killed = workers[workers["worker_id"] == demo.killed[0]]
    assert list(killed["event"]) == ["STARTED", "KILLED"]
    replacement = workers[workers["worker_id"] == demo.replacements[0]]
    assert list(replacement["event"]) == ["STARTED", "STOPPED"]
    assert replacement["worker_id"].iloc[0].startswith("parse_w2_")
    events = demo.job.events()
    assert demo.killed[0] in set(events[events["event_type"] == "worker_killed"]["worker_id"])
    assert (events["event_type"] == "backpressure_started").any()


def test_slow_stage_is_the_bottleneck_and_the_hot_partition_shows(demo):
    summary = demo.job.stage_summary().set_index("stage_id")
    assert summary.loc["enrich", "backpressure_level"] in ("LOW", "HIGH")
    assert summary.loc["sink", "backpressure_level"] == "OK"
    assert bottleneck(summary.reset_index()) == "enrich"
    parts = demo.job.partition_metrics()
    offsets = parts[parts["stage_id"] == "parse"].groupby("partition_id")["latest_offset"].max()
    # two splits in three go to partition 0, the rest spread over partitions 1-3
    assert offsets["0"] > 3 * offsets.drop("0").max()


def test_second_attempt_followed_live_from_a_process_without_ray(demo, store_dir):
    script = textwrap.dedent(
        f"""
        import json, sys, time
        import solstice_inspect as si
        store = si.connect({str(store_dir)!r})
        first = {demo.job.attempt_id!r}
        deadline = time.time() + 120
        while time.time() < deadline:  # wait for the second attempt to appear
            att = store.attempts({JOB!r})
            if len(att) >= 2 and att.iloc[-1].status == "RUNNING":
                break
            time.sleep(0.2)
        live = si.attach({JOB!r}, store=store, refresh=0.5)
        seen = []
        def on_rows(rows):
            n = rows["worker_metrics"].num_rows if "worker_metrics" in rows else 0
            seen.append([time.time(), n, live.status])
        live.subscribe(on_rows)
        live.wait(timeout=180)
        print(json.dumps({{"attempt": live.job.attempt_id, "first": first, "done": live.done,
                          "status": live.status, "seen": seen, "ray": "ray" in sys.modules}}))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        second = run_pipeline(job_id=JOB, duration=5, faults=False, store=store_dir)
        finished_at = time.time()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["attempt"] == second.job.attempt_id != res["first"]
    assert res["done"]
    assert res["status"] == "COMPLETED"
    assert not res["ray"]
    while_running = [n for t, n, status in res["seen"] if t < finished_at and n]
    assert while_running  # rows arrived while the job ran, not only at the end
    assert sum(n for _, n, _ in res["seen"]) == second.job.table("worker_metrics").num_rows
    attempts = si.connect(store_dir).attempts(JOB)
    assert list(attempts["attempt_id"]) == [demo.job.attempt_id, second.job.attempt_id]
    assert list(attempts["status"]) == ["COMPLETED", "COMPLETED"]
