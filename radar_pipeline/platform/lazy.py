"""Import a module on first use instead of at import time.

For modules that are heavy and only needed inside asset bodies (matplotlib behind the
pictures, ...): the Dagster code server, every run worker and `radar` import the
definitions, and should not pay for what a run may never touch.
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """`name`, executed on its first attribute access (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        # as a regular import does: `import a.b.c` elsewhere then reaches it as attribute c of a.b
        setattr(sys.modules[parent], child, module)
    return module
