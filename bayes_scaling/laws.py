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
    centred : ``(amplitude, exponent, input)`` triples. A term ``A * X**-alpha`` is
        sampled as its value at the data's centre, ``log A - alpha * mean(log X)``,
        which removes most of the correlation between ``log A`` and ``alpha``. The
        posterior still reports ``A`` on its natural scale.
    formula : the law in words, for tables and reports.
    """

    name: str
    mean: Callable[[Params, Inputs], Array]
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    centred: tuple[tuple[str, str, str], ...] = ()
    formula: str = ""


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
    )
)
