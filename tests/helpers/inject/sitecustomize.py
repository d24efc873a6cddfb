"""Started by every Python process the tests start (this folder is on PYTHONPATH, see
tests/conftest.py): installs the fault injector (`fault_injector`) when EQUISWEEP_FAULT is set,
and does nothing else. A sitecustomize further along the path (a virtualenv's, a distro's)
still runs: Python imports only the first one it finds, so this one runs the next."""

import importlib.machinery
import importlib.util
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    entries = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", entries)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["_next_sitecustomize"] = module
    spec.loader.exec_module(module)


_chain()
if os.environ.get("EQUISWEEP_FAULT"):
    import fault_injector

    fault_injector.install()
