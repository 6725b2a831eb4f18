"""The NumPyro model of a law: its priors, a Student-t likelihood on log loss, and where sampling starts.

The model reads its data as one :class:`ModelData` (never a closure), so that data sets
of the same shape share one compilation.

Parameterization: each term ``A * X**-alpha`` named in ``law.centred`` is sampled
as its log value at the centre of the data, ``log_A_c = log A - alpha * centre_X``.
The data pin that value down almost independently of ``alpha``, so the sampler
sees a nearly uncorrelated posterior. The prior stays the prior on ``A``: it is
added as a factor with the Jacobian of ``A = exp(log_A_c + alpha * centre_X)``.
The posterior holds ``A`` on its natural scale as a deterministic site.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from .data import Dataset
from .laws import Law
from .priors import Spec

#: Rows are padded (and masked) up to the next power of two, at least this, so that
#: data sets of similar size (refits on subsets among them) share one compiled sampler.
PAD = 64


class ModelData(NamedTuple):
    """A law model's data, float32 arrays (with a leading axis K when K data sets are stacked).

    Attributes
    ----------
    x : centred log inputs, ``{"N": log N - centre_N, ...}``, each shape (n,).
    centre : the centres, ``{"N": centre_N, ...}``, scalars (zero for an input no
        centred term names).
    y : log loss, shape (n,).
    mask : 1.0 for real rows, 0.0 for padding, shape (n,).
    """

    x: dict[str, jax.Array]
    centre: dict[str, jax.Array]
    y: jax.Array
    mask: jax.Array


class Target(NamedTuple):
    """What a sampler samples: a NumPyro model of ``data``, where to start, what to check.

    Attributes
    ----------
    model : ``model(data)``, a NumPyro model.
    initial : ``initial(data, key)``: a starting point for the mode search, a dict of
        unconstrained values per sample site.
    checked : sample sites whose convergence is checked (every component of each).
    key : hashable, fixes the target in this process (compiled programs are shared per key).
    tag : text that fixes the target's code across processes, for programs kept on disk;
        None: never stored.
    """

    model: Callable[[object], None]
    initial: Callable[[object, jax.Array], dict]
    checked: tuple[str, ...]
    key: Hashable
    tag: str | None


# The data record crosses the boundaries of stored programs.
with contextlib.suppress(ValueError):  # already registered (a reloaded module)
    jax.export.register_namedtuple_serialization(ModelData, serialized_name="bayes_scaling.ModelData")


def padded_length(n: int, pad: int = PAD) -> int:
    """Rows after padding: the next power of two at or above ``n``, at least ``pad``."""
    return max(pad, 1 << (n - 1).bit_length())


def model_data(dataset: Dataset, law: Law, pad: int = PAD) -> ModelData:
    """Arrays for :func:`target`'s model: centred log inputs, log loss and a mask.

    Logs and centring happen in float64; only differences of order 1 reach JAX.
    Inputs that no entry of ``law.centred`` names are passed uncentred.
    Rows are padded up to a power of two, at least ``pad``: padding sits at the centre with
    the mean log loss and mask 0, so it adds nothing to the likelihood.
    """
    return jax.tree.map(lambda a: a[0], stack_data([dataset], law, pad))


def stack_data(datasets: Sequence[Dataset], law: Law, pad: int = PAD) -> ModelData:
    """:func:`model_data` of K data sets, stacked: every array with a leading axis K.

    All are padded to the padded length of the longest, in one vectorized pass.
    """
    lengths = np.array([len(d) for d in datasets])
    size = padded_length(int(lengths.max()), pad)
    starts = np.cumsum(lengths) - lengths
    which = np.repeat(np.arange(len(datasets)), lengths)  # data set of each run
    row = np.arange(lengths.sum()) - starts[which]  # its row within the data set
    columns = (*law.inputs, "loss")
    values = np.concatenate(
        [d.frame.to_numpy(np.float64)[:, [d.frame.columns.get_loc(k) for k in columns]] for d in datasets]
    )
    logs = {k: np.log(values[:, j]) for j, k in enumerate(columns)}

    def mean(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts) / lengths

    def padded(values: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
        out = np.empty((len(datasets), size))
        out[:] = np.reshape(fill, (-1, 1))
        out[which, row] = values
        return out.astype(np.float32)

    # Only inputs whose scale parameters are all named in ``law.centred`` may be centred.
    centred = {x for _, _, x in law.centred}
    zero = np.zeros(len(datasets))
    centre = {k: mean(logs[k]) if k in centred else zero for k in law.inputs}
    return ModelData(
        x={k: padded(logs[k] - centre[k][which], 0.0) for k in law.inputs},
        centre={k: v.astype(np.float32) for k, v in centre.items()},
        y=padded(logs["loss"], mean(logs["loss"])),
        mask=padded(np.ones(len(which)), 0.0),
    )


def target(law: Law, spec: Spec) -> Target:
    """The NumPyro model of ``law`` with the priors of ``spec``, and its starting point.

    Sample sites: every law parameter that is not a centred amplitude, one
    ``log_<A>_c`` per centred amplitude, ``sigma`` (scale of the noise on log loss)
    and the observed ``log_loss``. Deterministic sites: each centred amplitude on its
    natural scale.
    """
    amplitudes = {amp: (exponent, x) for amp, exponent, x in law.centred}

    def model(data: ModelData) -> None:
        p = {}
        for name in law.params:
            if name not in amplitudes:
                p[name] = numpyro.sample(name, spec.priors[name].build())
        at_centre = dict(p)
        for amp, (exponent, x) in amplitudes.items():
            log_c = numpyro.sample(f"log_{amp}_c", dist.ImproperUniform(constraints.real, (), ()))
            k = p[exponent] if isinstance(exponent, str) else exponent
            log_amp = log_c + k * data.centre[x]
            numpyro.factor(f"{amp}_prior", spec.priors[amp].build().log_prob(jnp.exp(log_amp)) + log_amp)
            numpyro.deterministic(amp, jnp.exp(log_amp))
            at_centre[amp] = jnp.exp(log_c)
        sigma = numpyro.sample("sigma", spec.priors["sigma"].build())
        mu = law.mean(at_centre, data.x)
        with numpyro.handlers.mask(mask=data.mask > 0):
            numpyro.sample("log_loss", dist.StudentT(spec.df, mu, sigma), obs=data.y)

    def initial(data: ModelData, key: jax.Array) -> dict:
        return _initial_point(law, spec, data, key)

    priors = spec.to_json()
    tag = law.tag and f"{law.tag} {priors}"
    return Target(model, initial, (*law.params, "sigma"), (law, priors), tag)


def _initial_point(law: Law, spec: Spec, data: ModelData, key: jax.Array) -> dict:
    """A starting point in unconstrained space: prior medians, and terms that explain the data.

    The irreducible term (if the law has one) starts below the smallest loss; each
    centred power-law term starts at an equal share of the remaining loss at the centre,
    each centred scale at its prior median; ``sigma`` starts at the spread of the log
    losses, so that no run is an outlier of the Student-t before the mode search has moved.
    """
    z = {}
    centred = {amp for amp, _, _ in law.centred}
    real = data.mask > 0
    y_min = jnp.min(jnp.where(real, data.y, jnp.inf))
    y_mean = jnp.sum(jnp.where(real, data.y, 0.0)) / jnp.sum(real)
    y_std = jnp.sqrt(jnp.sum(jnp.where(real, (data.y - y_mean) ** 2, 0.0)) / jnp.sum(real))
    for name in (*law.params, "sigma"):
        if name in centred:
            continue
        prior = spec.priors[name].build()
        value = jnp.median(prior.sample(key, (255,)))
        if name == law.irreducible:
            value = jnp.minimum(value, 0.7 * jnp.exp(y_min))
        if name == "sigma":
            value = jnp.maximum(value, y_std)
        z[name] = biject_to(prior.support).inv(value)
    terms = [amp for amp, k, _ in law.centred if isinstance(k, str)]
    floor = 0.0
    if law.irreducible in z:
        floor = biject_to(spec.priors[law.irreducible].build().support)(z[law.irreducible])
    reducible = jnp.maximum(jnp.exp(y_mean) - floor, 1e-3)
    for amp, k, x in law.centred:
        if isinstance(k, str):  # a power-law term: an equal share of the reducible loss at the centre
            z[f"log_{amp}_c"] = jnp.log(reducible / len(terms))
        else:  # a scale (a break point, Kaplan's N_c): its prior median, centred
            median = jnp.median(spec.priors[amp].build().sample(key, (255,)))
            z[f"log_{amp}_c"] = jnp.log(median) - k * data.centre[x]
    return z
