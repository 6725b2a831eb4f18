"""Scaling-law families as pure JAX functions of parameters and log inputs.

A law maps natural parameters (``E``, ``A``, ``alpha`` ...) and natural logs of its
inputs (``N`` parameters, ``D`` training tokens, ``C`` training FLOP) to the natural
log of the expected loss. Working on log scales keeps token counts above 2**31 and
FLOP counts near 1e25 well inside float32 range.

Adding a family is one function plus a :class:`Law` record (and, to ship default
priors, one TOML file in ``models/``)::

    def my_law(p, x):
        return jnp.log(p["E"] + p["A"] * jnp.exp(-p["alpha"] * x["C"]))

    register(Law("my-law", my_law, params=("E", "A", "alpha"), inputs=("C",)))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

Params = Mapping[str, Array]
Inputs = Mapping[str, Array]


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


@dataclass(frozen=True)
class Law:
    """A scaling-law family.

    Attributes
    ----------
    name : registry name, e.g. ``"chinchilla"``.
    mean : ``mean(params, log_inputs) -> log expected loss``, a pure JAX function.
    params : names of the law's parameters, on their natural scales.
    inputs : which log inputs the law reads, from ``("N", "D", "C")``.
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
    """

    name: str
    mean: Callable[[Params, Inputs], Array]
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    centred: tuple[tuple[str, str | float, str], ...] = ()
    formula: str = ""
    data_exponent: str | None = None

    @property
    def min_runs(self) -> int:
        """Fewest runs a fit needs: one more than the parameters, noise scale ``sigma`` included."""
        return len(self.params) + 2


_REGISTRY: dict[str, Law] = {}


def register(law: Law) -> Law:
    """Add ``law`` to the registry so that it can be named in the API and the CLI."""
    _REGISTRY[law.name] = law
    return law


def get_law(law: str | Law) -> Law:
    """Return the registered law called ``law`` (a :class:`Law` passes through)."""
    if isinstance(law, Law):
        return law
    try:
        return _REGISTRY[law]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown law {law!r}; known laws: {known}") from None


def law_names() -> list[str]:
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
    )
)


def power(x: str) -> Callable[[Params, Inputs], Array]:
    """Single-variable power law with an irreducible term, ``L(X) = E + A * X**-alpha`` (Kaplan et al. 2020 style).

    The returned function reads ``p`` with ``E``, ``A``, ``alpha`` and ``x[X]``
    (log of N, D or C); it returns the log expected loss.
    """

    def mean(p: Params, xs: Inputs) -> Array:
        return jnp.logaddexp(jnp.log(p["A"]) - p["alpha"] * xs[x], jnp.log(p["E"]))

    mean.__name__ = f"power_{x.lower()}"
    return mean


for _x in ("N", "D", "C"):
    register(
        Law(
            f"power-{_x.lower()}",
            power(_x),
            params=("E", "A", "alpha"),
            inputs=(_x,),
            centred=(("A", "alpha", _x),),
            formula=f"L({_x}) = E + A / {_x}^alpha",
            data_exponent="alpha" if _x == "D" else None,
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

    suffix = "" if (x, breaks) == ("C", 1) else f"-{x.lower()}{breaks}"
    return Law(
        f"broken{suffix}",
        mean,
        params=("E", "A", "alpha", *(n for triple in names for n in triple)),
        inputs=(x,),
        centred=(("A", "alpha", x), *((d, 1.0, x) for _, d, _ in names)),
        formula=f"L({x}) = E + A {x}^-alpha prod_i (1 + ({x}/d_i)^(1/f_i))^(-c_i f_i)",
    )


register(broken("C", 1))


def downstream(p: Params, x: Inputs) -> Array:
    """Downstream metric against compute, as OpenAI predicted GPT-4's HumanEval pass rate.

    ``-E[log p] = alpha * C**-k``, fitted to ``-log(score)`` (see ``load_data(metric=True)``).
    ``p`` holds ``alpha`` and ``k`` (and ``E``, an offset: the ``downstream-offset`` variant).

    Returns
    -------
    Log of the expected ``-log(score)``, shape (n,).
    """
    log_term = jnp.log(p["alpha"]) - p["k"] * x["C"]
    return jnp.logaddexp(log_term, jnp.log(p["E"])) if "E" in p else log_term


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
        downstream,
        params=("E", "alpha", "k"),
        inputs=("C",),
        centred=(("alpha", "k", "C"),),
        formula="-log(score) = E + alpha C^-k",
    )
)
