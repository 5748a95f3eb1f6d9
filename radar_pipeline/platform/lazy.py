"""Import a module on first use instead of at import time.

For modules that are heavy and only needed inside asset bodies (matplotlib behind the
pictures, ...): the Dagster code server, every run worker and `radar` import the
definitions, and should not pay for what a run may never touch.
"""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
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


def lazy_attributes(module: str, **getters: Callable[[], object]) -> Callable[[str], object]:
    """A module `__getattr__` for constants built on first use (polars schemas: polars costs every
    definitions import ~0.4 s, issue 24 item 3): `from module import NAME` and `module.NAME` keep
    working and return `getters[NAME]()`. Code in the module itself calls the getter: a module's
    own global lookups never reach its `__getattr__`."""
    def __getattr__(name: str) -> object:
        getter = getters.get(name)
        if getter is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getter()
    return __getattr__
