"""The NumPyro model: a law, its priors, and a Student-t likelihood on log loss.

The model reads its data as one dictionary of arrays (never a closure), so that
data sets of the same shape share one compilation::

    data = {
        "x": {"N": log N - centre_N, "D": log D - centre_D},   # each shape (n,)
        "centre": {"N": centre_N, "D": centre_D},              # scalars
        "y": log loss,                                          # shape (n,)
        "mask": 1.0 for real rows, 0.0 for padding,             # shape (n,)
    }

Parameterization: each term ``A * X**-alpha`` named in ``law.centred`` is sampled
as its log value at the centre of the data, ``log_A_c = log A - alpha * centre_X``.
The data pin that value down almost independently of ``alpha``, so the sampler
sees a nearly uncorrelated posterior. The prior stays the prior on ``A``: it is
added as a factor with the Jacobian of ``A = exp(log_A_c + alpha * centre_X)``.
The posterior holds ``A`` on its natural scale as a deterministic site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .data import Dataset
from .laws import Law
from .priors import Spec

Model = Callable[[Mapping], None]


#: Rows are padded (and masked) up to the next power of two, at least this, so that
#: data sets of similar size (refits on subsets among them) share one compiled sampler.
PAD = 64


def padded_length(n: int, pad: int = PAD) -> int:
    """Rows after padding: the next power of two at or above ``n``, at least ``pad``."""
    return max(pad, 1 << (n - 1).bit_length())


def model_data(dataset: Dataset, law: Law, pad: int = PAD) -> dict:
    """Arrays for :func:`build`'s model: centred log inputs, log loss and a mask.

    Logs and centring happen in float64; only differences of order 1 reach JAX.
    Inputs that no entry of ``law.centred`` names are passed uncentred.
    Rows are padded up to a power of two, at least ``pad``: padding sits at the centre with
    the mean log loss and mask 0, so it adds nothing to the likelihood.
    """
    return jax.tree.map(lambda a: a[0], stack_data([dataset], law, pad))


def stack_data(datasets: Sequence[Dataset], law: Law, pad: int = PAD) -> dict:
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
    return {
        "x": {k: padded(logs[k] - centre[k][which], 0.0) for k in law.inputs},
        "centre": {k: v.astype(np.float32) for k, v in centre.items()},
        "y": padded(logs["loss"], mean(logs["loss"])),
        "mask": padded(np.ones(len(which)), 0.0),
    }


def build(law: Law, spec: Spec) -> Model:
    """Return the NumPyro model ``model(data)`` of ``law`` with the priors of ``spec``.

    Sample sites: every law parameter that is not a centred amplitude, one
    ``log_<A>_c`` per centred amplitude, ``sigma`` (scale of the noise on log loss)
    and the observed ``log_loss``. Deterministic sites: each centred amplitude on its
    natural scale.
    """
    amplitudes = {amp: (exponent, x) for amp, exponent, x in law.centred}

    def model(data: Mapping) -> None:
        p = {}
        for name in law.params:
            if name not in amplitudes:
                p[name] = numpyro.sample(name, spec.priors[name].build())
        at_centre = dict(p)
        for amp, (exponent, x) in amplitudes.items():
            log_c = numpyro.sample(f"log_{amp}_c", dist.ImproperUniform(constraints.real, (), ()))
            k = p[exponent] if isinstance(exponent, str) else exponent
            log_amp = log_c + k * data["centre"][x]
            numpyro.factor(f"{amp}_prior", spec.priors[amp].build().log_prob(jnp.exp(log_amp)) + log_amp)
            numpyro.deterministic(amp, jnp.exp(log_amp))
            at_centre[amp] = jnp.exp(log_c)
        sigma = numpyro.sample("sigma", spec.priors["sigma"].build())
        mu = law.mean(at_centre, data["x"])
        with numpyro.handlers.mask(mask=data["mask"] > 0):
            numpyro.sample("log_loss", dist.StudentT(spec.df, mu, sigma), obs=data["y"])

    return model
