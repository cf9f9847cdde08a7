"""The icicle (flame) chart of a sampling profile: rectangles worked out by hand from a
folded profile, the merging rule, the bound on rectangles, and the Altair chart."""

from __future__ import annotations

import pandas as pd
import pytest

from solstice_inspect import charts, profiling

# 1,000 samples; by hand, per frame path (samples = its own stacks + everything under it):
#   a            1000 = 500 + 200 + 4 + 290 + 6
#   a;b           704 = 500 + 200 + 4     (a;b;g: 4 samples = 0.4 % < 0.5 %: merged into a;b)
#   a;d           290
#   a;e             6  (0.6 %: kept)
#   a;b;c         500
PROFILE = pd.DataFrame(
    {
        "stack": ["a;b;c", "a;b", "a;d", "a;e", "a;b;g"],
        "samples": [500, 200, 290, 6, 4],
    }
)


def test_rectangles_span_their_samples_children_side_by_side():
    rects = charts.icicle_rects(PROFILE)
    got = {r["path"]: (r["depth"], r["x0"], r["x1"]) for r in rects.to_dict("records")}
    assert got == {
        "a": (0, 0, 1000),
        "a;b": (1, 0, 704),  # most sampled child first
        "a;d": (1, 704, 994),
        "a;e": (1, 994, 1000),
        "a;b;c": (2, 0, 500),
    }
    assert (rects["x1"] - rects["x0"] == rects["samples"]).all()
    assert rects.set_index("path")["share"].to_dict()["a;b"] == pytest.approx(0.704)
    assert rects.set_index("path")["frame"].to_dict()["a;b;c"] == "c"


def test_the_merge_threshold_and_the_rectangle_cap():
    assert "a;b;g" in set(charts.icicle_rects(PROFILE, min_share=0.0)["path"])
    assert set(charts.icicle_rects(PROFILE, min_share=0.3)["path"]) == {"a", "a;b", "a;b;c"}
    # 5,000 leaves of one sample each under one root: at most 2,000 rectangles, the root
    # (every sample) among them, and no leaf without its parent
    wide = pd.DataFrame({"stack": [f"root;f{i}" for i in range(5000)], "samples": 1})
    rects = charts.icicle_rects(wide, min_share=0.0)
    assert len(rects) == charts.ICICLE_MAX_RECTS
    root = rects[rects["depth"] == 0]
    assert root[["path", "x0", "x1"]].to_numpy().tolist() == [["root", 0, 5000]]
    assert rects.loc[rects["depth"] == 1, "x1"].max() <= 5000
    # the default threshold alone (0.5 % of 5,000 = 25 samples) keeps only the root
    assert charts.icicle_rects(wide)["path"].tolist() == ["root"]


def test_the_chart_draws_the_rectangles_with_tooltips():
    chart = charts.icicle(PROFILE)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    rows = next(iter(spec["datasets"].values()))
    assert sorted((r["path"], r["x0"], r["x1"]) for r in rows) == [
        ("a", 0, 1000), ("a;b", 0, 704), ("a;b;c", 0, 500), ("a;d", 704, 994),
        ("a;e", 994, 1000),
    ]  # fmt: skip
    tips = spec["layer"][0]["encoding"]["tooltip"]
    share = {"field": "share", "format": ".1%", "title": "of samples", "type": "quantitative"}
    assert share in tips
    assert "1,000 samples" in spec["title"]
    with pytest.raises(ValueError, match="no samples"):
        charts.icicle(PROFILE.iloc[0:0])


def test_py_spy_raw_output_folds_into_stack_count_pairs():
    raw = (
        "<module> (w.py:7);busy_loop (w.py:4) 97\n"
        "<module> (w.py:7);busy_loop (w.py:3) 2\n"
        "<module> (w.py:7);busy_loop (w.py:4) 1\n"
        "\n"
        "garbage line\n"
    )
    assert profiling.parse_folded(raw) == [
        ["<module> (w.py:7);busy_loop (w.py:4)", 98],
        ["<module> (w.py:7);busy_loop (w.py:3)", 2],
    ]


def test_ptrace_refusal_names_the_fix():
    said = {"rc": 1, "err": "Error: Permission Denied: Try running again with elevated permissions"}
    err = profiling.failure(said, 123, "node1")
    assert "CAP_SYS_PTRACE" in str(err)
    assert "ptrace_scope" in str(err)
    assert profiling.failure({"rc": 0, "folded": "", "err": ""}, 123, "node1") is None
