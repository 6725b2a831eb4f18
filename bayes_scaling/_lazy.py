"""Modules imported at their first use.

NumPyro (about 0.35 s of a fresh process's imports, with the parts of SciPy and JAX it loads) is needed only
to trace a model or build a prior, which a run whose programs are all stored (a warm ``bayes-scaling fit``)
never does: the package's modules name it through :class:`Lazy` (``tests/test_packaging.py``).
"""

from __future__ import annotations

import importlib


class Lazy:
    """The module ``name``, imported when one of its attributes is first read: ``Lazy("numpyro").sample``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"Lazy({self._name!r})"
