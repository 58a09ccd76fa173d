"""Lazy re-exports for the package ``__init__`` modules.

Each sub-package lists its public API in ``__all__`` and maps every name to the module that
defines it; the module is imported on first attribute access, so ``import analysis`` and
``promptstate --help`` stay fast and importing one part does not pull in the others.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> module defining it (absolute, or relative to ``package``
            when it starts with a dot).

    Returns:
        The module-level ``__getattr__`` (imports the defining module on first use and caches
        the value in the package) and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
