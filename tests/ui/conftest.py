"""One JupyterLab server and one headless Chromium per test session (TESTING.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lab import CHROMIUM, Lab, launch_browser, new_page

ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/ui/" in str(item.fspath):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser-deps`")
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.kill_sessions()
    server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = launch_browser(p, tmp_path_factory.mktemp("chromium"))
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser):
    page = new_page(browser)
    yield page
    page.close()


@pytest.fixture(scope="session")
def artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS
