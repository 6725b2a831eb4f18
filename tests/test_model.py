import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer.util import log_density

import bayes_scaling as bs
from bayes_scaling._model import model_data, stack_data, target
from bayes_scaling.fit import _as_dataset
from bayes_scaling.priors import resolve


def test_stacked_data_sets_of_different_lengths_equal_each_one_padded():
    law = bs.laws.get("chinchilla")
    sets = [
        bs.load_data(
            bs.simulate({"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.3, "beta": 0.3}, bs.datasets.sweep(sizes=s))
        )
        for s in (8, 5, 9)
    ]
    spec = resolve(law)
    stacked = stack_data(sets, law, spec)
    assert stacked.y.shape == (3, 128)  # 72 runs, the longest, pad to 128
    for i, data in enumerate(sets):
        single = model_data(data, law, spec, pad=128)
        mine = jax.tree.map(lambda a, i=i: a[i], stacked)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), mine, single)
        n = len(data)
        # Centred inputs average zero over the real rows; padding sits at the centre with mask 0.
        np.testing.assert_allclose(stacked.x["N"][i, :n].mean(), 0.0, atol=1e-5)
        assert stacked.mask[i].sum() == n and not stacked.x["D"][i, n:].any()
        np.testing.assert_allclose(stacked.centre["N"][i], np.log(data.frame["N"]).mean(), rtol=1e-6)


def test_a_power_law_with_a_floor_is_sampled_by_its_curve_with_the_same_posterior():
    """power-c, E + A / C^alpha, is sampled as the log loss at the data's centre, the log of its reducible over
    its irreducible part there and the log slope of log loss there. The map to (log E, log A_c, log alpha) has
    Jacobian determinant 1: at any point the model's log density equals the usual coordinates' (each prior on
    its parameter's log scale, with its Jacobian; the Student-t likelihood), to float32 precision."""
    law = bs.laws.get("power-c")
    spec = resolve(law)
    data = model_data(_as_dataset(None, law), law, spec)
    m, t, slope, sigma = 0.6, -0.4, np.log(0.05), 0.03
    point = {"log_L_c": m, "share_logit": t, "log_slope": slope, "sigma": sigma}
    value, trace = log_density(target(law, spec).model, (data,), {}, point)
    share = 1 / (1 + np.exp(-t))
    e, a = np.exp(m) * (1 - share), np.exp(m) * share
    alpha = np.exp(slope) / share
    log_a = np.log(a) + alpha * float(data.centre["C"])  # log A, at C = 1 FLOP
    real = np.asarray(data.mask) > 0
    mu = np.logaddexp(np.log(a) - alpha * np.asarray(data.x["C"]), np.log(e))[real]
    expected = (
        dist.LogNormal(0.5, 0.7).log_prob(e) + np.log(e)  # models/power-c.toml's priors
        + dist.LogNormal(6.0, 5.0).log_prob(np.exp(log_a)) + log_a
        + dist.LogNormal(-1.5, 0.8).log_prob(alpha) + np.log(alpha)
        + dist.HalfNormal(0.1).log_prob(sigma)
        + jnp.sum(dist.StudentT(4.0, mu, sigma).log_prob(np.asarray(data.y)[real]))
    )  # fmt: skip
    np.testing.assert_allclose(float(value), float(expected), rtol=2e-6)
    for name, want in (("E", e), ("alpha", alpha), ("A", np.exp(log_a))):
        np.testing.assert_allclose(float(trace[name]["value"]), want, rtol=1e-5)
    # A law with two terms (Chinchilla) keeps the usual coordinates.
    chinchilla = bs.laws.get("chinchilla")
    sites = target(chinchilla, resolve(chinchilla)).initial(
        model_data(_as_dataset(None, chinchilla), chinchilla, resolve(chinchilla)), jax.random.key(0)
    )
    assert set(sites) == {"E", "log_A_c", "log_B_c", "alpha", "beta", "sigma"}
