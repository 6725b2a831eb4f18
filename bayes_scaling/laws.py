"""Scaling-law families: pure JAX functions of parameters and log inputs, and their records.

A law maps natural parameters (``E``, ``A``, ``alpha`` ...) and natural logs of its
inputs (``N`` parameters, ``D`` training tokens, ``C`` training FLOP, and for data repeated
over epochs ``U`` unique tokens) to the natural log of the expected loss. Working on log
scales keeps token counts above 2**31 and FLOP counts near 1e25 well inside float32 range.

Adding a family is one function plus a :class:`Law` record (and, to ship default
priors, one TOML file in ``models/``)::

    def my_law(p, x):
        return jnp.log(p["E"] + p["A"] * jnp.exp(-p["alpha"] * x["C"]))

    register(Law("my-law", my_law, params=("E", "A", "alpha"), inputs=("C",), irreducible="E"))

Everything the rest of the package needs to know about a family is in its record:
which parameter is the irreducible loss, which is the data exponent, and its
closed-form compute-optimal split where one exists. No other module branches on a
law's or a parameter's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import logsumexp

Params = Mapping[str, Array]
Inputs = Mapping[str, Array]

#: Sizes a sweep grows along: the axes of extrapolation (distances beyond the data, backtest cutoffs).
AXES = ("N", "D", "C")
#: Inputs that modify a law without being an axis: ``U``, unique training tokens (data repeated over
#: D / U epochs). Each is measured in the units of an axis (centred with it) and reads as that axis
#: where a run or a point does not give it: a run without unique tokens saw every token once.
MODIFIERS = {"U": "D"}


def chinchilla(p: Params, x: Inputs) -> Array:
    """Chinchilla law ``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al. 2022).

    Parameters
    ----------
    p : mapping with ``E`` (nats/token), ``A``, ``B``, ``alpha``, ``beta``; each a
        scalar or an array broadcastable against the inputs.
    x : mapping with ``N`` (log parameters) and ``D`` (log training tokens), shape (n,).

    Returns
    -------
    Array, shape broadcast of the inputs: log expected loss (log nats/token).
    """
    terms = jnp.stack(
        jnp.broadcast_arrays(
            jnp.log(p["A"]) - p["alpha"] * x["N"],
            jnp.log(p["B"]) - p["beta"] * x["D"],
            jnp.log(p["E"]),
        )
    )
    return logsumexp(terms, axis=0)


def chinchilla_optimum(p: Params, log_nd: Array) -> Array:
    """Compute-optimal log N of the Chinchilla law, for a budget with ``N·D = exp(log_nd)`` (C = k·N·D).

    ``N_opt = G · (N·D)**(beta/(alpha+beta))`` with ``G = (alpha·A / (beta·B))**(1/(alpha+beta))``
    (Hoffmann et al. 2022, Appendix D.2); ``D_opt = N·D / N_opt``.

    Parameters
    ----------
    p : ``A``, ``B``, ``alpha``, ``beta``, each broadcastable against ``log_nd``.
    log_nd : log of the parameter-token product the budget buys, ``log(C / k)``.

    Returns
    -------
    log N_opt, shape broadcast of the arguments.
    """
    a, b = p["alpha"], p["beta"]
    log_g = (jnp.log(a) + jnp.log(p["A"]) - jnp.log(b) - jnp.log(p["B"])) / (a + b)
    return log_g + b / (a + b) * log_nd


def data_constrained(p: Params, x: Inputs) -> Array:
    """Chinchilla law on effective data and parameters when data repeat (Muennighoff et al. 2023, eq. 5).

    With ``U`` unique tokens seen over ``D / U`` epochs, ``R_D = D / U - 1`` repetitions are worth
    ``D' = U + U·R*_D·(1 - exp(-R_D / R*_D))`` fresh tokens: repeated tokens lose value with a
    half-life set by ``Rstar_D``. Parameters beyond ``U_N``, the compute-optimal size for ``U`` tokens
    (``alpha·A / N**alpha = beta·B / U**beta``), lose value the same way (``Rstar_N``):
    ``N'' = U_N + U_N·R*_N·(1 - exp(-R_N / R*_N))`` with ``R_N = N / U_N - 1``. That discount is
    phased in with the repeated share of the tokens, ``s = 1 - U / D``: ``N' = (1 - s)·N + s·N''``.
    The paper applies it in full to every run, which would also discount single-epoch runs
    larger than compute-optimal, that the Chinchilla law already describes; phased in, a run that
    sees each token once (``U = D``) is read exactly as the Chinchilla law reads it.

    Parameters
    ----------
    p : ``E``, ``A``, ``B``, ``alpha``, ``beta`` as for :func:`chinchilla`, and ``Rstar_D``, ``Rstar_N``
        (repetitions at which repeated tokens, excess parameters keep ``1 - 1/e`` of their value).
    x : log ``N``, log ``D`` and log ``U`` (unique tokens; above ``D`` it reads as ``D``), shape (n,).

    Returns
    -------
    Log expected loss, shape (n,).
    """
    log_u = jnp.minimum(x["U"], x["D"])
    repeats = jnp.expm1(x["D"] - log_u)  # R_D >= 0
    log_d = log_u + jnp.log1p(-p["Rstar_D"] * jnp.expm1(-repeats / p["Rstar_D"]))
    log_base = (jnp.log(p["alpha"] * p["A"]) - jnp.log(p["beta"] * p["B"]) + p["beta"] * log_u) / p["alpha"]
    log_base = jnp.minimum(log_base, x["N"])  # U_N
    excess = jnp.expm1(x["N"] - log_base)  # R_N >= 0
    log_discounted = log_base + jnp.log1p(-p["Rstar_N"] * jnp.expm1(-excess / p["Rstar_N"]))
    repeated = -jnp.expm1(log_u - x["D"])  # s in [0, 1)
    log_n = x["N"] + jnp.log1p(repeated * jnp.expm1(log_discounted - x["N"]))  # log((1 - s) N + s N'')
    return chinchilla(p, {"N": log_n, "D": log_d})


@dataclass(frozen=True)
class Law:
    """A scaling-law family.

    Attributes
    ----------
    name : registry name, e.g. ``"chinchilla"``.
    mean : ``mean(params, log_inputs) -> log expected loss``, a pure JAX function.
    params : names of the law's parameters, on their natural scales.
    inputs : which log inputs the law reads, from :data:`AXES` and :data:`MODIFIERS`.
    centred : ``(amplitude, k, input)`` triples, ``k`` a parameter name or a number.
        A term ``A * X**-k`` is sampled as its value at the data's centre,
        ``log A - k * mean(log X)``, which removes most of the correlation between
        ``log A`` and ``k``; a scale such as a break point ``d`` in ``X / d`` is the
        case ``k = 1``. The law must be unchanged when ``X`` is divided by ``X0`` and
        each amplitude by ``X0**k``. The posterior reports every parameter on its
        natural scale.
    formula : the law in words, for tables and reports.
    data_exponent : the parameter that is the data-scaling exponent, if any (for the
        implied intrinsic dimension d = 4 / exponent).
    irreducible : the parameter that is the irreducible loss (the floor the reducible
        terms fall towards), if any.
    optimum : closed-form compute-optimal split, ``optimum(params, log(C/k)) -> log N``;
        None: the optimum of a law of N and D is found numerically.
    """

    name: str
    mean: Callable[[Params, Inputs], Array]
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    centred: tuple[tuple[str, str | float, str], ...] = ()
    formula: str = ""
    data_exponent: str | None = None
    irreducible: str | None = None
    optimum: Callable[[Params, Array], Array] | None = None

    def __post_init__(self) -> None:
        unknown = [x for x in self.inputs if x not in AXES and x not in MODIFIERS]
        if unknown or not self.axes:
            raise ValueError(f"law {self.name!r}: inputs must be among N, D, C (and U), got {self.inputs}")
        for field in ("data_exponent", "irreducible"):
            value = getattr(self, field)
            if value is not None and value not in self.params:
                raise ValueError(f"law {self.name!r}: {field} {value!r} is not one of its parameters {self.params}")
        for amplitude, k, x in self.centred:
            if amplitude not in self.params or x not in self.inputs or (isinstance(k, str) and k not in self.params):
                raise ValueError(
                    f"law {self.name!r}: centred term {(amplitude, k, x)} names an unknown parameter/input"
                )

    @property
    def axes(self) -> tuple[str, ...]:
        """The inputs that are axes of extrapolation (:data:`AXES`), in the law's order."""
        return tuple(x for x in self.inputs if x in AXES)

    @property
    def min_runs(self) -> int:
        """Fewest runs a fit needs: one more than the parameters, noise scale ``sigma`` included."""
        return len(self.params) + 2

    @property
    def tag(self) -> str | None:
        """Text that identifies this law's code, for programs kept on disk; None for a law defined elsewhere.

        A law whose function lives in this package is covered by the package's source hash;
        its function's qualified name (which names the input and breaks of a built family)
        and the record tell it apart from every other. A law defined outside the package is
        never stored: its code is in no hash.
        """
        mean = self.mean
        module = getattr(mean, "__module__", None) or ""  # None for a function defined by exec()
        if not module.startswith(__name__.rsplit(".", 1)[0] + "."):
            return None
        return f"{mean.__module__}.{mean.__qualname__} {self.name} {self.params} {self.inputs} {self.centred}"


def complete(law: Law, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The law's inputs as float64 arrays, each modifier it reads filled where absent or NaN by its axis.

    Parameters
    ----------
    inputs : natural-scale values by name (arrays, Series or columns of a DataFrame); the law's axes
        must be present. A run or point without unique tokens ``U`` saw each token once: ``U = D``.
    """
    out = {k: np.asarray(inputs[k], np.float64) for k in law.axes}
    for k in law.inputs:
        if k in MODIFIERS:
            axis = np.asarray(inputs[MODIFIERS[k]], np.float64)
            given = np.asarray(inputs[k], np.float64) if k in inputs else np.full(axis.shape, np.nan)
            out[k] = np.where(np.isnan(given), axis, given)
    return out


_REGISTRY: dict[str, Law] = {}


def register(law: Law) -> Law:
    """Add ``law`` to the registry so that it can be named in the API and the CLI."""
    _REGISTRY[law.name] = law
    return law


def get(law: str | Law) -> Law:
    """Return the registered law called ``law`` (a :class:`Law` passes through)."""
    if isinstance(law, Law):
        return law
    try:
        return _REGISTRY[law]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown law {law!r}; known laws: {known}") from None


def names() -> list[str]:
    """Names of the registered laws."""
    return sorted(_REGISTRY)


register(
    Law(
        "chinchilla",
        chinchilla,
        params=("E", "A", "B", "alpha", "beta"),
        inputs=("N", "D"),
        centred=(("A", "alpha", "N"), ("B", "beta", "D")),
        formula="L(N, D) = E + A / N^alpha + B / D^beta",
        data_exponent="beta",
        irreducible="E",
        optimum=chinchilla_optimum,
    )
)


register(
    Law(
        "data-constrained",
        data_constrained,
        params=("E", "A", "B", "alpha", "beta", "Rstar_D", "Rstar_N"),
        inputs=("N", "D", "U"),
        centred=(("A", "alpha", "N"), ("B", "beta", "D")),
        formula="L = E + A / N'^alpha + B / D'^beta, D' = U + U R*_D (1 - exp(-(D/U - 1) / R*_D)), N' likewise",
        data_exponent="beta",
        irreducible="E",
        optimum=chinchilla_optimum,  # with unlimited unique data (U = D) the law is the Chinchilla law
    )
)


def power(x: str) -> Callable[[Params, Inputs], Array]:
    """Single-variable power law with an irreducible term, ``L(X) = E + A * X**-alpha`` (Kaplan et al. 2020 style).

    The returned function reads ``p`` with ``E``, ``A``, ``alpha`` and ``x[X]``
    (log of N, D or C); it returns the log expected loss.
    """

    def mean(p: Params, xs: Inputs) -> Array:
        return jnp.logaddexp(jnp.log(p["A"]) - p["alpha"] * xs[x], jnp.log(p["E"]))

    mean.__name__ = mean.__qualname__ = f"power_{x.lower()}"
    return mean


for _x in AXES:
    register(
        Law(
            f"power-{_x.lower()}",
            power(_x),
            params=("E", "A", "alpha"),
            inputs=(_x,),
            centred=(("A", "alpha", _x),),
            formula=f"L({_x}) = E + A / {_x}^alpha",
            data_exponent="alpha" if _x == "D" else None,
            irreducible="E",
        )
    )


def kaplan(p: Params, x: Inputs) -> Array:
    """Kaplan et al. (2020) joint law ``L(N, D) = [(N_c/N)**(alpha_N/alpha_D) + D_c/D]**alpha_D``.

    Parameters
    ----------
    p : ``N_c``, ``D_c`` (parameters, tokens), ``alpha_N``, ``alpha_D``.
    x : log ``N`` and log ``D``, shape (n,).

    Returns
    -------
    Log expected loss, shape (n,). There is no irreducible term: L -> 0 as N, D grow.
    """
    return p["alpha_D"] * jnp.logaddexp(
        p["alpha_N"] / p["alpha_D"] * (jnp.log(p["N_c"]) - x["N"]), jnp.log(p["D_c"]) - x["D"]
    )


register(
    Law(
        "kaplan",
        kaplan,
        params=("N_c", "D_c", "alpha_N", "alpha_D"),
        inputs=("N", "D"),
        centred=(("N_c", 1.0, "N"), ("D_c", 1.0, "D")),
        formula="L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
        data_exponent="alpha_D",
    )
)


def broken(x: str = "C", breaks: int = 1) -> Law:
    """A smoothly broken power law (Caballero et al. 2022, "Broken Neural Scaling Laws").

    ``L(X) = E + A * X**-alpha * prod_i (1 + (X / d_i)**(1 / f_i))**(-c_i * f_i)``:
    below each break ``d_i`` the slope is ``alpha`` (plus earlier changes), above it
    it steepens by ``c_i`` (or flattens, for ``c_i < 0``); ``f_i`` sets how sharp the
    break is, in units of log X. Curves that bend, plateau or show a second regime.

    Parameters
    ----------
    x : the input, ``"N"``, ``"D"`` or ``"C"``.
    breaks : number of breaks.
    """
    names = [(f"c{i}", f"d{i}", f"f{i}") for i in range(1, breaks + 1)]

    def mean(p: Params, xs: Inputs) -> Array:
        log_term = jnp.log(p["A"]) - p["alpha"] * xs[x]
        for c, d, f in names:
            log_term = log_term - p[c] * p[f] * jax.nn.softplus((xs[x] - jnp.log(p[d])) / p[f])
        return jnp.logaddexp(log_term, jnp.log(p["E"]))

    mean.__name__ = mean.__qualname__ = f"broken_{x.lower()}{breaks}"
    suffix = "" if (x, breaks) == ("C", 1) else f"-{x.lower()}{breaks}"
    return Law(
        f"broken{suffix}",
        mean,
        params=("E", "A", "alpha", *(n for triple in names for n in triple)),
        inputs=(x,),
        centred=(("A", "alpha", x), *((d, 1.0, x) for _, d, _ in names)),
        formula=f"L({x}) = E + A {x}^-alpha " + " ".join(f"(1 + ({x}/{d})^(1/{f}))^(-{c} {f})" for c, d, f in names),
        irreducible="E",
    )


register(broken("C", 1))


def downstream(p: Params, x: Inputs) -> Array:
    """Downstream metric against compute, as OpenAI predicted GPT-4's HumanEval pass rate.

    ``-E[log p] = alpha * C**-k``, fitted to ``-log(score)`` (see ``load_data(metric=True)``).

    Returns
    -------
    Log of the expected ``-log(score)``, shape (n,).
    """
    return jnp.log(p["alpha"]) - p["k"] * x["C"]


def downstream_offset(p: Params, x: Inputs) -> Array:
    """:func:`downstream` with an offset ``E``: ``-E[log p] = E + alpha * C**-k``."""
    return jnp.logaddexp(downstream(p, x), jnp.log(p["E"]))


register(
    Law(
        "downstream",
        downstream,
        params=("alpha", "k"),
        inputs=("C",),
        centred=(("alpha", "k", "C"),),
        formula="-log(score) = alpha C^-k",
    )
)
register(
    Law(
        "downstream-offset",
        downstream_offset,
        params=("E", "alpha", "k"),
        inputs=("C",),
        centred=(("alpha", "k", "C"),),
        formula="-log(score) = E + alpha C^-k",
        irreducible="E",
    )
)
