"""Recommendations and data samples: :meth:`Job.recommendations`, :meth:`Job.samples`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from solstice_inspect.analysis import recommend as _recommend
from solstice_inspect.analysis.history import stage_order
from solstice_inspect.analysis.lineage import LineageGraph, pc
from solstice_inspect.analysis.query import (
    checked_keywords,
    closest_ids,
    id_list,
    sql_in,
    sql_literal,
)
from solstice_inspect.analysis.samples import sample_rows
from solstice_inspect.errors import NotFound
from solstice_inspect.semantics import sources_and_sinks

if TYPE_CHECKING:
    from solstice_inspect.store.reader import Job as _Base
else:
    _Base = object


class AdviceViews(_Base):
    """Mixin of :class:`~solstice_inspect.api.Job`: what to change, and what went through."""

    @checked_keywords
    def recommendations(self, *, history: bool = True) -> pd.DataFrame:
        """Per stage: more workers for the bottleneck, fewer for a stage idle > 80 % of
        the time — with the figures that say so, from this run and earlier runs.

        Parameters
        ----------
        history
            Weigh the earlier COMPLETED runs of this job id (at most the last 20): how
            fast each stage ran with how many workers.

        Returns
        -------
        pandas.DataFrame
            One row per stage, upstream first: stage_id, action (*add workers*,
            *remove workers*, *keep*, *investigate*, *at max_parallelism* or *no
            recommendation*), current_workers, suggested_workers (never above the
            stage's max_parallelism nor below its min_parallelism), reason (a sentence
            with the figures), the evidence — busy_fraction, idle_fraction,
            backpressure_share, bottleneck_share, output_rate (rec/s), history_runs,
            history (rate by worker count in earlier runs) — and note (why there is no
            recommendation). ``attrs``: job_id, attempt_id, earlier_runs, note.
            Each figure is defined in :mod:`solstice_inspect.analysis.recommend`:
            *busy* is the growth of a worker's cumulative ``processing_time`` over the
            wall time between its first and last reports; *idle* is 1 − busy.

        Examples
        --------
        >>> job.recommendations()[["stage_id", "action", "suggested_workers"]]  # doctest: +SKIP
          stage_id       action  suggested_workers
        0   source         keep                  1
        1   enrich  add workers                  6
        >>> print(job.recommendations().loc[1, "reason"])  # doctest: +SKIP
        enrich was the bottleneck 73 % of the run (backpressure on its input queue since
        12:01:07 UTC); its 4 workers were busy 97 % of the time; in 5 earlier runs with 6
        workers it ran 41 % faster: give it 6 workers.
        """
        dag = self.dag
        declared = [str(s) for s in dag.stages["stage_id"].dropna()]
        order = stage_order(list(dag.edges), declared)
        sinks = self._sinks(order, dag.edges)
        evidence = self._evidence(self, order, sinks)
        earlier = self._earlier_evidence(order, sinks) if history else {}
        limits = {
            str(r["stage_id"]): (r["min_parallelism"], r["max_parallelism"])
            for r in dag.stages.to_dict("records")
        }
        df = _recommend.recommend(
            evidence,
            parallelism=limits,
            history=_recommend.history_table(earlier),
            edges=list(dag.edges),
        )
        note = ""
        if df.empty:
            note = "nothing to recommend from: no stage or worker has reported yet"
        elif (df["action"] == "no recommendation").all():
            note = "no stage has enough evidence yet (see each row's note)"
        df.attrs.update(
            job_id=self.job_id, attempt_id=self.attempt_id, earlier_runs=len(earlier), note=note
        )
        return df

    @staticmethod
    def _sinks(order: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
        dag: dict[str, list[str]] = {}
        for up, down in edges:
            dag.setdefault(up, []).append(down)
        return sources_and_sinks(order, dag)[1]

    @staticmethod
    def _evidence(job: Any, order: list[str], sinks: list[str] | None) -> pd.DataFrame:
        sm = job.table("stage_metrics", columns=_recommend.WINDOW_COLUMNS)
        wm = job.table("worker_metrics", columns=_recommend.WORKER_COLUMNS)
        seen = list(dict.fromkeys([*order, *sm.column("stage_id").drop_null().to_pylist()]))
        return _recommend.run_evidence(sm, wm, order=seen, sinks=sinks)

    def _earlier_evidence(self, order: list[str], sinks: list[str] | None) -> dict[str, Any]:
        """:func:`run_evidence` of the earlier COMPLETED attempts (the latest 20)."""
        attempts = self.store.attempts(self.job_id)
        ids = list(attempts["attempt_id"].astype(str))
        if self.attempt_id not in ids:
            return {}
        before = attempts.iloc[: ids.index(self.attempt_id)]
        done = before.loc[before["status"] == "COMPLETED", "attempt_id"].astype(str)
        return {
            aid: self._evidence(self.store.attempt(self.job_id, aid), order, sinks)
            for aid in list(done)[-_recommend.MAX_HISTORY_RUNS :]
        }

    @checked_keywords
    def samples(
        self, split_id: str | None = None, *, stage: str | list[str] | None = None
    ) -> pd.DataFrame:
        """The output rows producers sampled with ``tel.sample`` (≤ 5 per split).

        Parameters
        ----------
        split_id
            Only the rows sampled from this split.
        stage
            Only rows of these stages (an id or a list).

        Returns
        -------
        pandas.DataFrame
            One row per sampled row, oldest first: ts, split_id, stage_id, worker_id,
            sample_row (its place in the sample), truncated (the sample was cut: more
            rows or text than kept), then the row's own fields (a row that is not a
            mapping is in ``value``).

        Raises
        ------
        NotFound
            A split or stage this job never had, naming the closest known ones.

        Examples
        --------
        >>> import solstice_inspect as si, tempfile
        >>> store = si.connect(tempfile.mkdtemp())
        >>> with store.record("etl_001") as rec:
        ...     _ = rec.ingest([si.envelope("sample", "etl_001", "parse_w0_a1b2c3",
        ...         1764331200.0, {"stage_id": "parse", "split_id": "parse_src_split_0",
        ...                        "rows": [{"user": "ann", "n": 1}]})])
        >>> store.job("etl_001").samples("parse_src_split_0")[["worker_id", "user", "n"]]
                 worker_id user  n
        0  parse_w0_a1b2c3  ann  1
        """
        stages = id_list(stage, "stage")
        conds = []
        if split_id is not None:
            conds.append(f"split_id = {sql_literal(str(split_id))}")
        if stages:
            conds.append(sql_in("stage_id", stages))
        table = self.table("samples", where=" AND ".join(conds) or None)
        where = f"job {self.job_id!r} (attempt {self.attempt_id})"
        for sid in stages or ():
            if sid not in set(table.column("stage_id").to_pylist()):
                known = set(self.dag.stages["stage_id"].dropna().astype(str))
                known |= set(self.table("samples", columns=["stage_id"]).column(0).to_pylist())
                known.discard(None)  # type: ignore[arg-type]
                if sid not in known:
                    raise NotFound("stage", sid, where, closest_ids(sid, sorted(known)), len(known))
        if split_id is not None and table.num_rows == 0:
            self._require_split(str(split_id), where)
        return sample_rows(table)

    def _require_split(self, split_id: str, where: str) -> None:
        """NotFound unless the split was processed or named as a parent."""
        graph = LineageGraph(self.table("lineage", columns=["split_id", "parent_split_ids"]))
        if not graph.has(split_id):
            known = graph.known_ids()
            count = pc.count_distinct(known).as_py()
            raise NotFound("split", split_id, where, closest_ids(split_id, known), count)
