"""bayes_scaling: Bayesian scaling-law fits with JAX and NumPyro.

Public API::

    import bayes_scaling as bs
    result = bs.fit()                                    # Chinchilla law on the embedded runs
    bs.forecast(result, preset=["gpt3", "gpt4"])         # bands at named scales
    bs.plots.fit(result, path="fit.png")
    result.save("fit.nc"); bs.load("fit.nc")

Names: data (``load_data``, ``datasets``, ``simulate``), laws and priors (``laws``, ``Law``,
``Prior``), fitting (``fit``, ``fit_many``, ``Settings``, ``Result``, ``load``), using a fit
(``forecast``, ``backtest``, ``compare``, ``review``, ``optimal``, ``design``, ``plots``,
``report``),
warnings (``ConvergenceWarning``, ``DataWarning``, ``ExtrapolationWarning``) and ``enable_cache``. Everything else
is internal.
"""

import gc as _gc

# Importing JAX, NumPyro, pandas and the package makes some 170,000 objects that the cyclic collector tracks,
# nearly all kept for the life of the process; the collector would walk them again and again meanwhile (about
# 0.2 s of a 4 s `bayes-scaling fit`, measured). It pauses while the package imports and resumes as it was.
_collecting = _gc.isenabled()
_gc.disable()
try:
    # _lapack first: under jaxlib 0.10 it changes how batched LAPACK calls are compiled, before any program is.
    from . import _lapack, datasets, laws, optimal, plots, report  # noqa: F401
    from ._programs import enable_cache
    from ._sampler import Settings
    from .backtest import backtest
    from .compare import compare
    from .data import DataWarning, load_data
    from .design import design
    from .diagnostics import ConvergenceWarning
    from .fit import fit, fit_many
    from .forecast import ExtrapolationWarning, forecast
    from .laws import Law
    from .priors import Prior
    from .result import Result, load
    from .review import review
    from .simulate import simulate
finally:
    if _collecting:
        _gc.enable()

__version__ = "0.2.0"

__all__ = [
    "ConvergenceWarning",
    "DataWarning",
    "ExtrapolationWarning",
    "Law",
    "Prior",
    "Result",
    "Settings",
    "backtest",
    "compare",
    "datasets",
    "design",
    "enable_cache",
    "fit",
    "fit_many",
    "forecast",
    "laws",
    "load",
    "load_data",
    "optimal",
    "plots",
    "report",
    "review",
    "simulate",
]
