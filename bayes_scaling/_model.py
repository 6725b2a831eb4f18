"""The NumPyro model of a law: its priors, a Student-t likelihood on log loss, and where sampling starts.

The model reads its data as one :class:`ModelData` (never a closure), so that data sets
of the same shape share one compilation.

Runs in groups (data sets, set-ups, model families; :class:`Design`): each parameter, on the
sampler's scale (the unconstrained value of its prior's support: log E, the centred log
amplitude, log alpha, ...), is *shared* (one value), *separate* (one per group, each with the
parameter's prior) or *pooled* (a population value ``<p>_pop`` with the parameter's prior, and
per-group offsets ``<p>_tau * <p>_z`` with ``<p>_z ~ Normal(0, 1)``, non-centred, and
``<p>_tau ~ HalfNormal(TAU_SCALE)``).

Replicates (runs that repeat a configuration: the same group, N and D): the likelihood is
written over configurations. With ``n`` runs of mean log loss ``m`` and within sum of squares
``ss``, the run noise ``sigma`` is read from the spread within configurations (the Gaussian
factor ``-(n - 1) log sigma - ss / (2 sigma**2)``) and the law's misfit at a configuration,
``sigma_misfit``, from the spread of the means beyond it: ``m ~ StudentT(df, law, sqrt(
sigma_misfit**2 + sigma**2 / n))``. Without replicates the two cannot be told apart, and the
model is the plain one (``sigma`` alone).

Parameterization: each term ``A * X**-alpha`` named in ``law.centred`` is sampled
as its log value at the centre of the data, ``log_A_c = log A - alpha * centre_X``.
The data pin that value down almost independently of ``alpha``, so the sampler
sees a nearly uncorrelated posterior. The prior stays the prior on ``A``: it is
added as a factor with the Jacobian of ``A = exp(log_A_c + alpha * centre_X)``.
The posterior holds ``A`` on its natural scale as a deterministic site. A law of such
terms and an irreducible term only, ``E + A * X**-alpha + ...`` (the Chinchilla law,
power-n/d/c), goes one step further: it is sampled by the curve at the centre
(:func:`_sample_curve`: the log loss there, each term's share of it, each term's log
slope), where E and the exponents, which trade off along a curved ridge, lie along a
straight one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._lazy import Lazy
from .data import Dataset
from .laws import MODIFIERS, Law, complete
from .priors import Spec

numpyro = Lazy("numpyro")
dist = Lazy("numpyro.distributions")
constraints = Lazy("numpyro.distributions.constraints")
transforms = Lazy("numpyro.distributions.transforms")

#: Rows are padded (and masked) up to the next power of two, at least this, so that
#: data sets of similar size (refits on subsets among them) share one compiled sampler.
PAD = 64
#: Prior scale of each pooled parameter's spread across groups, on the sampler's scale
#: (HalfNormal): 0.3 lets groups differ by about 30% on a log scale, and far more if the data say so.
TAU_SCALE = 0.3
#: Prior scale of the law's misfit at a configuration (HalfNormal, on log loss), when runs repeat.
MISFIT_SCALE = 0.05


class Design(NamedTuple):
    """How the runs are organized, beyond their values: what a grouped or replicated model needs.

    Attributes
    ----------
    labels : the group labels, sorted (empty: no groups).
    pooling : ``(parameter, mode)`` pairs for every law parameter (meaningful with groups).
    replicates : some configuration (group, N, D) has more than one run.
    """

    labels: tuple[str, ...] = ()
    pooling: tuple[tuple[str, str], ...] = ()
    replicates: bool = False

    @property
    def plain(self) -> bool:
        """No groups and no replicates: the model of a single sweep."""
        return not self.labels and not self.replicates

    def mode(self, name: str) -> str:
        return dict(self.pooling).get(name, "shared") if self.labels else "shared"


#: The design of a single sweep with no repeated configurations.
PLAIN = Design()


def design(dataset: Dataset, law: Law, spec: Spec) -> Design:
    """The :class:`Design` of ``dataset`` for a fit of ``law`` with ``spec``'s pooling."""
    labels = tuple(dataset.labels)
    pooling = tuple((name, spec.pooling.get(name, "shared")) for name in law.params) if labels else ()
    keys = list(complete(law, dataset.frame).values())
    if labels:
        keys.append(np.unique(dataset.frame["group"].to_numpy(), return_inverse=True)[1])
    _, counts = np.unique(np.column_stack(keys), axis=0, return_counts=True)
    return Design(labels, pooling, bool((counts > 1).any()))


class ModelData(NamedTuple):
    """A law model's data, float32 arrays (with a leading axis K when K data sets are stacked).

    Attributes
    ----------
    x : centred log inputs, ``{"N": log N - centre_N, ...}``, each shape (n,).
    centre : the centres, ``{"N": centre_N, ...}``, scalars (zero for an input no
        centred term names).
    y : log loss, shape (n,) (with replicates: a row per configuration, its mean log loss).
    mask : 1.0 for real rows, 0.0 for padding, shape (n,).
    group : each row's group index into :attr:`Design.labels` (0 without groups), int32 (n,).
    count : runs behind each row (1 without replicates), shape (n,).
    ss : sum of squares of the runs' log loss about the row's mean (0 without replicates), (n,).
    prior : each prior's arguments, ``{"E": {"loc": ..., "scale": ...}, ...}``, scalars: priors are
        data, so that fits differing only in their priors' values (a review's prior-sensitivity refits)
        share one compiled program; only the distributions' families fix the program.
    """

    x: dict[str, jax.Array]
    centre: dict[str, jax.Array]
    y: jax.Array
    mask: jax.Array
    group: jax.Array
    count: jax.Array
    ss: jax.Array
    prior: dict[str, dict[str, jax.Array]]


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
    offsets : ``(population, log spread, offsets)`` sample sites of each pooled parameter, non-centred
        (``value = population + spread * offset``): the sampler centres them partially
        (:func:`centring_weights`).
    """

    model: Callable[[object], None]
    initial: Callable[[object, jax.Array], dict]
    checked: tuple[str, ...]
    key: Hashable
    tag: str | None
    offsets: tuple[tuple[str, str, str], ...] = ()


# The data record crosses the boundaries of stored programs.
with contextlib.suppress(ValueError):  # already registered (a reloaded module)
    jax.export.register_namedtuple_serialization(ModelData, serialized_name="bayes_scaling.ModelData")


def padded_length(n: int, pad: int = PAD) -> int:
    """Rows after padding: the next power of two at or above ``n``, at least ``pad``."""
    return max(pad, 1 << (n - 1).bit_length())


def model_data(dataset: Dataset, law: Law, spec: Spec, pad: int = PAD, design: Design = PLAIN) -> ModelData:
    """Arrays for :func:`target`'s model: centred log inputs, log loss, a mask, groups and replicates.

    Logs and centring happen in float64; only differences of order 1 reach JAX.
    Inputs that no entry of ``law.centred`` names are passed uncentred.
    Rows are padded up to a power of two, at least ``pad``: padding sits at the centre with
    the mean log loss and mask 0, so it adds nothing to the likelihood. With replicates
    (``design.replicates``) a row is a configuration: its runs' mean log loss, count and
    sum of squares; the centres are those of the runs.
    """
    if design.replicates:
        return _configurations(dataset, law, spec, pad, design)
    return jax.tree.map(lambda a: a[0], stack_data([dataset], law, spec, pad, design))


def prior_arrays(spec: Spec, k: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """``spec``'s prior arguments as :attr:`ModelData.prior` reads them (float32; with ``k``, each (k,))."""
    shape = () if k is None else (k,)
    return {name: {a: np.full(shape, v, np.float32) for a, v in p.args} for name, p in spec.priors.items()}


def form(spec: Spec) -> str:
    """What of ``spec`` fixes a model's program: each prior's family and the likelihood (not the values)."""
    return json.dumps({"priors": {k: p.dist for k, p in spec.priors.items()}, "df": spec.df})


def _configurations(dataset: Dataset, law: Law, spec: Spec, pad: int, design: Design) -> ModelData:
    """:func:`model_data` with a row per configuration (group, N, D): mean log loss, count, sum of squares."""
    frame = dataset.frame
    runs = model_data(dataset, law, spec, pad=len(frame), design=design._replace(replicates=False))
    n = len(frame)
    keys = np.column_stack([*complete(law, frame).values(), np.asarray(runs.group)[:n]])
    _, first, which = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    which = which.reshape(-1)
    k = len(first)
    y = np.log(frame["loss"].to_numpy(np.float64))
    count = np.bincount(which, minlength=k).astype(np.float64)
    mean = np.bincount(which, weights=y, minlength=k) / count
    ss = np.bincount(which, weights=(y - mean[which]) ** 2, minlength=k)
    size = padded_length(k, pad)

    def padded(values: np.ndarray, fill: float, dtype: type = np.float32) -> np.ndarray:
        return np.concatenate([values, np.full(size - k, fill)]).astype(dtype)

    return ModelData(
        x={name: padded(np.asarray(v)[first], 0.0) for name, v in runs.x.items()},
        centre=runs.centre,
        y=padded(mean, float(mean.mean())),
        mask=padded(np.ones(k), 0.0),
        group=padded(np.asarray(runs.group)[first], 0, np.int32),
        count=padded(count, 1.0),
        ss=padded(ss, 0.0),
        prior=prior_arrays(spec),
    )


def stack_data(datasets: Sequence[Dataset], law: Law, spec: Spec, pad: int = PAD, design: Design = PLAIN) -> ModelData:
    """:func:`model_data` of K data sets (each without replicates), stacked: every array with a leading axis K.

    All are padded to the padded length of the longest, in one vectorized pass. Group labels
    index into ``design.labels``.
    """
    lengths = np.array([len(d) for d in datasets])
    size = padded_length(int(lengths.max()), pad)
    starts = np.cumsum(lengths) - lengths
    which = np.repeat(np.arange(len(datasets)), lengths)  # data set of each run
    row = np.arange(lengths.sum()) - starts[which]  # its row within the data set
    filled = [complete(law, d.frame) for d in datasets]
    logs = {k: np.log(np.concatenate([f[k] for f in filled])) for k in law.inputs}
    logs["loss"] = np.log(np.concatenate([d.frame["loss"].to_numpy(np.float64) for d in datasets]))

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
    for k, axis in MODIFIERS.items():  # unique tokens are tokens: centred with D
        if k in centre:
            centre[k] = centre[axis]
    if design.labels:
        index = {label: i for i, label in enumerate(design.labels)}
        labels = np.concatenate([d.frame["group"].to_numpy() for d in datasets])
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"group {unknown[0]!r} is not among the design's groups {', '.join(design.labels)}")
        group = padded(np.array([index[label] for label in labels], np.float64), 0.0).astype(np.int32)
    else:
        group = np.zeros((len(datasets), size), np.int32)
    return ModelData(
        x={k: padded(logs[k] - centre[k][which], 0.0) for k in law.inputs},
        centre={k: v.astype(np.float32) for k, v in centre.items()},
        y=padded(logs["loss"], mean(logs["loss"])),
        mask=padded(np.ones(len(which)), 0.0),
        group=group,
        count=np.ones((len(datasets), size), np.float32),
        ss=np.zeros((len(datasets), size), np.float32),
        prior=prior_arrays(spec, len(datasets)),
    )


def target(law: Law, spec: Spec, design: Design = PLAIN) -> Target:
    """The NumPyro model of ``law`` with the priors of ``spec``, and its starting point.

    Sample sites: every law parameter that is not a centred amplitude, one
    ``log_<A>_c`` per centred amplitude, ``sigma`` (scale of the noise on log loss)
    and the observed ``log_loss``. Deterministic sites: each centred amplitude on its
    natural scale. Runs in groups or with replicates (``design``): :func:`grouped`.
    """
    if not design.plain:
        return grouped(law, spec, design)
    amplitudes = {amp: (exponent, x) for amp, exponent, x in law.centred}

    def model(data: ModelData) -> None:
        curve = _curve(law, spec, data)
        if curve:  # E + A * X**-alpha (+ ...): sampled by the curve at the centre
            at_centre = _sample_curve(spec, data, curve)
        else:
            p = {name: numpyro.sample(name, _prior(spec, data, name)) for name in law.params if name not in amplitudes}
            at_centre = dict(p)
            for amp, (exponent, x) in amplitudes.items():
                log_c = numpyro.sample(f"log_{amp}_c", dist.ImproperUniform(constraints.real, (), ()))
                k = p[exponent] if isinstance(exponent, str) else exponent
                log_amp = log_c + k * data.centre[x]
                numpyro.factor(f"{amp}_prior", _prior(spec, data, amp).log_prob(jnp.exp(log_amp)) + log_amp)
                numpyro.deterministic(amp, jnp.exp(log_amp))
                at_centre[amp] = jnp.exp(log_c)
        sigma = numpyro.sample("sigma", _prior(spec, data, "sigma"))
        mu = law.mean(at_centre, data.x)
        with numpyro.handlers.mask(mask=data.mask > 0):
            numpyro.sample("log_loss", dist.StudentT(spec.df, mu, sigma), obs=data.y)

    def initial(data: ModelData, key: jax.Array) -> dict:
        z = _initial_point(law, spec, data, key)
        curve = _curve(law, spec, data)
        return _to_curve(z, curve) if curve else z

    priors = form(spec)
    tag = law.tag and f"{law.tag} {priors}"
    return Target(model, initial, (*law.params, "sigma"), (law, priors), tag)


def _curve(law: Law, spec: Spec, data: ModelData) -> tuple[str, tuple] | None:
    """``(irreducible, law.centred)`` when the plain model samples ``law`` in curve coordinates
    (:func:`_sample_curve`), else None: a law of power-law terms and an irreducible term,
    ``L = E + A * X**-alpha + B * Y**-beta + ...`` with no other parameter, whose priors of E and of the
    exponents have the positive reals as support (the Chinchilla law, power-n/d/c, downstream-offset)."""
    if law.irreducible is None or not law.centred or not all(isinstance(k, str) for _, k, _ in law.centred):
        return None
    exponents = [k for _, k, _ in law.centred]
    if set(law.params) != {law.irreducible, *(amp for amp, _, _ in law.centred), *exponents}:
        return None
    positive = all(_prior(spec, data, n).support is constraints.positive for n in (law.irreducible, *exponents))
    return (law.irreducible, tuple(law.centred)) if positive else None


def _sample_curve(spec: Spec, data: ModelData, curve: tuple[str, tuple]) -> dict[str, jax.Array]:
    """Sample ``L = E + sum_j A_j * X_j**-alpha_j`` by what the runs pin down: the curve at the centre of the data.

    Sites: ``log_L_c``, the log expected loss at the centre; per term ``A``, ``share_logit_A``, the log of
    its part of that loss over the irreducible part, ``log(a / E)`` with ``a = A * X_c**-alpha``, and
    ``log_slope_A``, the log of the slope of log loss against log X there, ``alpha * a / L_c``. Runs that
    span a decade or two fix the loss and the slopes tightly and leave the split between the floor and the
    terms loose: where ``(log E, log a, log alpha)`` trade off along a curved ridge (E against the
    exponents, a banana that long NUTS trees crawl along: 118 leapfrog steps a draw for power-c on the lower
    half of the embedded runs by compute, 32 for the Chinchilla law on the lower half by N), these
    coordinates move along a straight one (7). The map to ``(log E, log a_j, log alpha_j)`` has Jacobian
    determinant 1 (the shares are a softmax over ``(0, share_logit_A, ...)``), so the priors of E, A and
    alpha apply as they are (each on the log scale, with its Jacobian): the posterior is the same, only the
    sampler's coordinates differ. Returns E, each amplitude at the centre and each exponent; deterministic
    sites E, each exponent, each amplitude and its ``log_A_c``.
    """
    irreducible, terms = curve
    real = dist.ImproperUniform(constraints.real, (), ())
    m = numpyro.sample("log_L_c", real)
    logits = [numpyro.sample(f"share_logit_{amp}", real) for amp, _, _ in terms]
    slopes = [numpyro.sample(f"log_slope_{amp}", real) for amp, _, _ in terms]
    log_share = jax.nn.log_softmax(jnp.stack([jnp.zeros_like(m), *logits]))
    log_e = m + log_share[0]
    out = {irreducible: jnp.exp(log_e)}
    factors = [(irreducible, out[irreducible], log_e)]
    for (amp, exponent, x), log_part, slope in zip(terms, log_share[1:], slopes, strict=True):
        log_c, log_k = m + log_part, slope - log_part
        out[amp], out[exponent] = jnp.exp(log_c), jnp.exp(log_k)
        log_amp = log_c + out[exponent] * data.centre[x]
        amplitude = jnp.exp(log_amp)
        factors += [(exponent, out[exponent], log_k), (amp, amplitude, log_amp)]
        numpyro.deterministic(amp, amplitude)
        numpyro.deterministic(f"log_{amp}_c", log_c)
    for name, value, log_value in factors:
        numpyro.factor(f"{name}_prior", _prior(spec, data, name).log_prob(value) + log_value)
    numpyro.deterministic(irreducible, out[irreducible])
    for _, exponent, _ in terms:
        numpyro.deterministic(exponent, out[exponent])
    return out


def _to_curve(z: dict[str, jax.Array], curve: tuple[str, tuple]) -> dict[str, jax.Array]:
    """A starting point of the usual sites (log E, ``log_A_c``, log alpha, ...) in :func:`_sample_curve`'s sites."""
    irreducible, terms = curve
    z = dict(z)
    log_e = z.pop(irreducible)
    parts = {amp: (z.pop(f"log_{amp}_c"), z.pop(exponent)) for amp, exponent, _ in terms}
    m = jax.nn.logsumexp(jnp.stack([log_e, *(log_c for log_c, _ in parts.values())]))
    z["log_L_c"] = m
    for amp, (log_c, log_k) in parts.items():
        z[f"share_logit_{amp}"] = log_c - log_e
        z[f"log_slope_{amp}"] = log_k + log_c - m
    return z


def _prior(spec: Spec, data: ModelData, name: str) -> dist.Distribution:
    """Parameter ``name``'s prior: ``spec``'s family with the arguments the data carry (:attr:`ModelData.prior`)."""
    return spec.priors[name].build(data.prior[name])


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
        prior = _prior(spec, data, name)
        value = jnp.median(prior.sample(key, (255,)))
        if name == law.irreducible:
            value = jnp.minimum(value, 0.7 * jnp.exp(y_min))
        if name == "sigma":
            value = jnp.maximum(value, y_std)
        z[name] = transforms.biject_to(prior.support).inv(value)
    terms = [amp for amp, k, _ in law.centred if isinstance(k, str)]
    floor = 0.0
    if law.irreducible in z:
        floor = transforms.biject_to(_prior(spec, data, law.irreducible).support)(z[law.irreducible])
    reducible = jnp.maximum(jnp.exp(y_mean) - floor, 1e-3)
    for amp, k, x in law.centred:
        if isinstance(k, str):  # a power-law term: an equal share of the reducible loss at the centre
            z[f"log_{amp}_c"] = jnp.log(reducible / len(terms))
        else:  # a scale (a break point, Kaplan's N_c): its prior median, centred
            median = jnp.median(_prior(spec, data, amp).sample(key, (255,)))
            z[f"log_{amp}_c"] = jnp.log(median) - k * data.centre[x]
    return z


def _sites(law: Law, design: Design) -> tuple[str, ...]:
    """The sites whose convergence is checked: every law parameter (per group where it varies), the
    populations and spreads of pooled ones, and the noise scales."""
    pooled = [name for name in law.params if design.mode(name) == "pooled"]
    misfit = ("sigma_misfit",) if design.replicates else ()
    return (*law.params, *(f"{p}_pop" for p in pooled), *(f"{p}_tau" for p in pooled), "sigma", *misfit)


def grouped(law: Law, spec: Spec, design: Design) -> Target:
    """The model of runs in groups (each parameter shared, pooled or separate) and/or with replicates.

    Per parameter ``p`` (see the module's docstring): shared, site ``p``; separate, site ``p`` of
    shape (G,); pooled, sites ``p_pop``, ``p_tau``, ``p_z`` (G,) and the deterministic ``p`` (G,).
    A centred amplitude ``A`` is sampled as ``log_A_c`` (or ``log_A_c_pop``, ``A_tau``, ``A_z``);
    its prior applies to its population (shared: its value) on the natural scale, with the
    Jacobian. With replicates, ``sigma`` is the run noise and ``sigma_misfit`` the law's misfit at
    a configuration.
    """
    amplitudes = {amp: (exponent, x) for amp, exponent, x in law.centred}
    size = max(len(design.labels), 1)

    def value(name: str, data: ModelData) -> tuple[jax.Array, jax.Array]:
        """A non-centred parameter: (its value per group, or scalar; its population value)."""
        prior = _prior(spec, data, name)
        mode = design.mode(name)
        if mode == "shared":
            v = numpyro.sample(name, prior)
            return v, v
        if mode == "separate":
            v = numpyro.sample(name, prior.expand([size]).to_event(1))
            return v, jnp.mean(v)
        t = transforms.biject_to(prior.support)
        pop = numpyro.sample(f"{name}_pop", prior)
        tau = numpyro.sample(f"{name}_tau", dist.HalfNormal(TAU_SCALE))
        z = numpyro.sample(f"{name}_z", dist.Normal(0.0, 1.0).expand([size]).to_event(1))
        return numpyro.deterministic(name, t(t.inv(pop) + tau * z)), pop

    def model(data: ModelData) -> None:
        p, pop = {}, {}
        for name in law.params:
            if name not in amplitudes:
                p[name], pop[name] = value(name, data)
        at_centre = dict(p)
        for amp, (exponent, x) in amplitudes.items():
            k, k_pop = (p[exponent], pop[exponent]) if isinstance(exponent, str) else (exponent, exponent)
            mode = design.mode(amp)
            prior = _prior(spec, data, amp)
            if mode == "separate":
                log_c = numpyro.sample(f"log_{amp}_c", dist.ImproperUniform(constraints.real, (), (size,)))
                log_amp = log_c + k * data.centre[x]
                numpyro.factor(f"{amp}_prior", jnp.sum(prior.log_prob(jnp.exp(log_amp)) + log_amp))
            else:
                name = f"log_{amp}_c_pop" if mode == "pooled" else f"log_{amp}_c"
                log_pop = numpyro.sample(name, dist.ImproperUniform(constraints.real, (), ()))
                log_amp_pop = log_pop + k_pop * data.centre[x]
                numpyro.factor(f"{amp}_prior", prior.log_prob(jnp.exp(log_amp_pop)) + log_amp_pop)
                log_c = log_pop
                if mode == "pooled":
                    tau = numpyro.sample(f"{amp}_tau", dist.HalfNormal(TAU_SCALE))
                    z = numpyro.sample(f"{amp}_z", dist.Normal(0.0, 1.0).expand([size]).to_event(1))
                    log_c = numpyro.deterministic(f"log_{amp}_c", log_pop + tau * z)
                    numpyro.deterministic(f"{amp}_pop", jnp.exp(log_amp_pop))
                log_amp = log_c + k * data.centre[x]
            numpyro.deterministic(amp, jnp.exp(log_amp))
            at_centre[amp] = jnp.exp(log_c)
        rows = {k: v[data.group] if jnp.ndim(v) == 1 else v for k, v in at_centre.items()}
        mu = law.mean(rows, data.x)
        sigma = numpyro.sample("sigma", _prior(spec, data, "sigma"))
        scale = sigma
        if design.replicates:
            misfit = numpyro.sample("sigma_misfit", dist.HalfNormal(MISFIT_SCALE))
            scale = jnp.sqrt(misfit**2 + sigma**2 / data.count)
            within = -(data.count - 1.0) * jnp.log(sigma) - data.ss / (2.0 * sigma**2)
            numpyro.factor("within", jnp.sum(jnp.where(data.mask > 0, within, 0.0)))
        with numpyro.handlers.mask(mask=data.mask > 0):
            numpyro.sample("log_loss", dist.StudentT(spec.df, mu, scale), obs=data.y)

    def initial(data: ModelData, key: jax.Array) -> dict:
        z = _initial_point(law, spec, data, key)
        for name in law.params:
            site = f"log_{name}_c" if name in amplitudes else name
            mode = design.mode(name)
            if mode == "separate":
                z[site] = jnp.full(size, z[site])
            elif mode == "pooled":
                start = z.pop(site)
                z[f"{site}_pop"] = start
                z[f"{name}_tau"] = jnp.log(jnp.asarray(0.1))
                z[f"{name}_z"] = jnp.zeros(size)
        if design.replicates:
            z["sigma_misfit"] = jnp.log(jnp.asarray(0.3 * MISFIT_SCALE))
        return z

    key = (law, form(spec), size, design.pooling, design.replicates)
    tag = law.tag and f"{law.tag} {form(spec)} groups {size} {design.pooling} replicates {design.replicates}"
    offsets = tuple(
        (f"log_{p}_c_pop", f"{p}_tau", f"{p}_z") if p in amplitudes else (f"{p}_pop", f"{p}_tau", f"{p}_z")
        for p in law.params
        if design.mode(p) == "pooled"
    )
    return Target(model, initial, _sites(law, design), key, tag, offsets)


#: Offsets are centred for a spread this many posterior standard deviations (on its log scale) below its mode.
CENTRING_SD = 2.0


def centring_weights(offsets: tuple[tuple[str, str, str], ...], variance: dict) -> dict[str, jax.Array]:
    """How far to centre each group's offset, per group, in [0, 1] (0: non-centred, 1: centred).

    ``variance``: each site's posterior variance in the Laplace approximation at the mode
    (unconstrained, offsets non-centred, their prior Normal(0, 1)). An offset ``z`` whose group's
    runs pin the group's value ``tau * z`` with standard error ``s`` has posterior variance
    ``v = s**2 / (tau**2 + s**2)``; the weight ``t**2 / (t**2 + s**2)`` makes the Gaussian case's
    posterior independent of the spread at ``tau = t`` (Gorinova, Moore and Hoffman 2020, "Automatic
    reparameterisation of probabilistic programs"). It is taken at ``t`` :data:`CENTRING_SD` standard
    deviations of ``log tau`` below the mode: a spread the data leave uncertain down towards zero
    (parameters the groups share in truth) keeps its offsets closer to non-centred, whose geometry
    holds as the spread shrinks; groups the data pin, with a spread well away from zero, are sampled
    nearly centred (no funnel between the spread and the offsets).
    """
    weights = {}
    for _, log_tau, z in offsets:
        v = jnp.clip(variance[z], 1e-6, 1.0)
        shrink = jnp.exp(-2.0 * CENTRING_SD * jnp.sqrt(variance[log_tau]))  # (t / tau)**2
        weights[z] = shrink * (1.0 - v) / (shrink * (1.0 - v) + v)
    return weights


def centred(offsets: tuple[tuple[str, str, str], ...], v: dict, weights: dict) -> dict:
    """Unconstrained values ``v`` with each offset ``z`` moved to ``u = w * pop + tau**w * z`` (weight ``w``)."""
    w = dict(v)
    for pop, log_tau, z in offsets:
        lam = weights[z]
        w[z] = lam * v[pop] + jnp.exp(lam * v[log_tau]) * v[z]
    return w


def uncentred(offsets: tuple[tuple[str, str, str], ...], w: dict, weights: dict) -> tuple[dict, jax.Array]:
    """The inverse of :func:`centred` and the log |Jacobian| of this map (``sum(-w * log tau)``)."""
    v = dict(w)
    log_det = jnp.zeros(())
    for pop, log_tau, z in offsets:
        lam = weights[z]
        v[z] = (w[z] - lam * w[pop]) * jnp.exp(-lam * w[log_tau])
        log_det = log_det - jnp.sum(lam * w[log_tau])
    return v, log_det
