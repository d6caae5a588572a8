import os

# Framework work runs several times faster single-threaded on this machine; set before
# the first framework import.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest


def _has_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


HAS_TF = _has_tensorflow()


def pytest_collection_modifyitems(config, items):
    if HAS_TF:
        return
    skip = pytest.mark.skip(reason="tensorflow-cpu not installed (pip install -e '.[tensorflow]')")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(skip)
