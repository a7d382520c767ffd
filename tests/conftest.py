"""Shared test setup: the `root` marker for tests that need root (namespaces,
TUN, the real kernel); they are skipped, with the reason, otherwise."""

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
