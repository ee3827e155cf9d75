from __future__ import annotations

import sys

import cloudpickle
import pytest


@pytest.fixture(autouse=True, scope="session")
def _ship_test_callables_by_value() -> None:
    # Jobs run in fresh interpreters that need not find the tests package on sys.path.
    cloudpickle.register_pickle_by_value(sys.modules[__package__])
