"""Shared test setup: the `root` marker for tests that need root (namespaces,
TUN, the real kernel), skipped with the reason otherwise; and a cache folder
of the run's own."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "root(reason): needs root; skipped otherwise, with the reason")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    for item in items:
        marker = item.get_closest_marker("root")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs root"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _cache_of_this_run(tmp_path_factory):
    """tcptest's cache (built parser, read scripts) in a folder of this run, for
    the processes the tests start too: the tests never write the user's
    ~/.cache, and never read what another checkout left there."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if saved is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = saved
