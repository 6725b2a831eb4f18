"""bayes_scaling: Bayesian scaling-law fits with JAX and NumPyro.

Public API::

    import bayes_scaling as bs
    result = bs.fit()                                # Chinchilla law on the embedded runs
    bs.forecast(result, preset=["gpt3", "gpt4"])     # bands at named scales
    bs.plot_fit(result, path="fit.png")
    result.save("fit.nc"); bs.load("fit.nc")
"""

from . import datasets
from .cache import enable as enable_cache
from .compare import compare, stacked
from .data import Dataset, DataWarning, load_data
from .diagnostics import ConvergenceWarning
from .extrapolation import Backtest, backtest
from .fit import fit, fit_many
from .forecast import forecast, predict
from .forecast import targets as forecast_targets
from .isoflop import groups as isoflop_groups
from .isoflop import isoflop
from .laws import Law, get_law, law_names, register
from .optimal import budget, cheapest, chinchilla_optimum, decide, exponents, frontier, optimum
from .plots import plot_backtest, plot_fit, plot_frontier, plot_isoflop
from .presets import PRESETS, Target
from .priors import Prior, Spec, read_spec
from .result import Result, load
from .review import Review, review
from .sbc import Calibration, calibrate
from .simulate import simulate, sweep

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Backtest",
    "Calibration",
    "ConvergenceWarning",
    "DataWarning",
    "Dataset",
    "Law",
    "Prior",
    "Result",
    "Review",
    "Spec",
    "Target",
    "backtest",
    "budget",
    "calibrate",
    "cheapest",
    "chinchilla_optimum",
    "compare",
    "datasets",
    "decide",
    "enable_cache",
    "exponents",
    "fit",
    "fit_many",
    "forecast",
    "forecast_targets",
    "frontier",
    "get_law",
    "isoflop",
    "isoflop_groups",
    "law_names",
    "load",
    "load_data",
    "optimum",
    "plot_backtest",
    "plot_fit",
    "plot_frontier",
    "plot_isoflop",
    "predict",
    "read_spec",
    "register",
    "review",
    "simulate",
    "stacked",
    "sweep",
]
