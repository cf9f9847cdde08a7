"""Operations: the Prometheus exporter over a store and the store doctor (``docs/ops.md``).

The Grafana dashboards and the alert rules that go with the exporter are in ``ops/`` at
the repository root.
"""
