"""One local Ray cluster for the whole integration session (ray.init takes ~10 s here)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # the dashboard is needed by the State API (worker logs, actor pids)
    ctx = ray.init(
        num_cpus=2, include_dashboard=True, log_to_driver=False, ignore_reinit_error=True
    )
    # Ray's token authentication is on by default and must stay on: every Ray test runs
    # the recorder, the clients and ray_tools against an authenticating cluster
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    assert is_token_auth_enabled(), "Ray token authentication is off (RAY_AUTH_MODE?)"
    ray.dashboard_url = ctx.dashboard_url
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("store")
