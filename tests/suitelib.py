"""Import a module of the ETSI suites as a library, to unit-test the logic it holds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SUITE = Path(__file__).resolve().parents[1] / "testsuites" / "en303645"


def load_suite_module(filename: str, name: str) -> ModuleType:
    """`filename` under testsuites/en303645, as module `name`; its `import support` needs the suite folder."""
    sys.path.insert(0, str(SUITE))
    try:
        spec = importlib.util.spec_from_file_location(name, SUITE / filename)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SUITE))
