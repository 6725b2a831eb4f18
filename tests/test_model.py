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
    point = {"log_L_c": m, "share_logit_A": t, "log_slope_A": slope, "sigma": sigma}
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


def test_the_chinchilla_law_is_sampled_by_its_curve_with_the_same_posterior():
    """Two terms: the loss at the centre split by a softmax over (0, share_logit_A, share_logit_B) into E and
    the two terms, and each term's log slope; Jacobian 1 again. The model's log density equals the usual
    coordinates' (priors of models/chinchilla.toml, read from its spec), to float32 precision."""
    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    data = model_data(_as_dataset(None, law), law, spec)
    m, ta, tb, sa, sb, sigma = 0.7, -1.2, -0.8, np.log(0.03), np.log(0.05), 0.02
    point = {"log_L_c": m, "share_logit_A": ta, "share_logit_B": tb, "log_slope_A": sa, "log_slope_B": sb}
    value, trace = log_density(target(law, spec).model, (data,), {}, {**point, "sigma": sigma})
    weights = np.exp([0.0, ta, tb]) / np.exp([0.0, ta, tb]).sum()
    e, a, b = np.exp(m) * weights
    alpha, beta = np.exp(sa) / weights[1], np.exp(sb) / weights[2]
    log_big_a = np.log(a) + alpha * float(data.centre["N"])
    log_big_b = np.log(b) + beta * float(data.centre["D"])
    prior = {name: spec.priors[name].build(data.prior[name]) for name in (*law.params, "sigma")}
    real = np.asarray(data.mask) > 0
    terms = [np.log(e) + 0 * np.asarray(data.x["N"]), np.log(a) - alpha * np.asarray(data.x["N"])]
    mu = np.logaddexp(np.logaddexp(*terms), np.log(b) - beta * np.asarray(data.x["D"]))[real]
    expected = (
        prior["E"].log_prob(e) + np.log(e)
        + prior["A"].log_prob(np.exp(log_big_a)) + log_big_a
        + prior["B"].log_prob(np.exp(log_big_b)) + log_big_b
        + prior["alpha"].log_prob(alpha) + np.log(alpha)
        + prior["beta"].log_prob(beta) + np.log(beta)
        + prior["sigma"].log_prob(sigma)
        + jnp.sum(dist.StudentT(spec.df, mu, sigma).log_prob(np.asarray(data.y)[real]))
    )  # fmt: skip
    np.testing.assert_allclose(float(value), float(expected), rtol=2e-6)
    for name, want in (("E", e), ("alpha", alpha), ("beta", beta), ("A", np.exp(log_big_a))):
        np.testing.assert_allclose(float(trace[name]["value"]), want, rtol=1e-5)
    # A law with a parameter besides the floor and the terms (data-constrained: R*_D, R*_N) keeps the usual ones.
    constrained = bs.laws.get("data-constrained")
    runs = _as_dataset(None, constrained)
    sites = target(constrained, resolve(constrained)).initial(
        model_data(runs, constrained, resolve(constrained)), jax.random.key(0)
    )
    assert {"E", "log_A_c", "log_B_c", "alpha", "beta"} <= set(sites)
