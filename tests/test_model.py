import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import log_density

import bayes_scaling as bs
from bayes_scaling import _sampler
from bayes_scaling._model import (
    CENTRING_SD,
    centred,
    centring_weights,
    design,
    model_data,
    stack_data,
    target,
    uncentred,
)
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


def _three_groups() -> tuple:
    """A grouped Chinchilla target (E, A, B pooled over three groups), its data and a point of its sites."""
    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    runs = bs.datasets.chinchilla().frame.assign(group=lambda f: np.array(["a", "b", "c"])[np.arange(len(f)) % 3])
    data = bs.data.Dataset(runs, "three groups", {"group": "group"})
    plan = design(data, law, spec)
    model = target(law, spec, plan)
    point = model.initial(model_data(data, law, spec, design=plan), jax.random.key(0))
    rng = np.random.default_rng(1)
    point = {k: jnp.asarray(v + 0.3 * rng.standard_normal(np.shape(v)), jnp.float32) for k, v in point.items()}
    return model, model_data(data, law, spec, design=plan), point


def test_pooled_offsets_are_sampled_partially_centred_with_the_same_posterior():
    """Each pooled parameter's offsets z are sampled as u = w * pop + tau**w * z (w per group in [0, 1]): the map
    inverts, its log |Jacobian| is -sum(w * log tau), and the sampler's potential in u is the model's in z less
    that log |Jacobian|, to float32 precision."""
    model, data, v = _three_groups()
    assert [z for _, _, z in model.offsets] == ["E_z", "A_z", "B_z"]
    weights = {z: jnp.asarray([0.0, 0.6, 1.0]) for _, _, z in model.offsets}
    w = centred(model.offsets, v, weights)
    back, log_det = uncentred(model.offsets, w, weights)
    for name in v:
        np.testing.assert_allclose(back[name], v[name], rtol=1e-5, atol=1e-6)
    flat_w, unflatten = ravel_pytree(w)
    jacobian = jax.jacfwd(lambda f: ravel_pytree(uncentred(model.offsets, unflatten(f), weights)[0])[0])(flat_w)
    np.testing.assert_allclose(float(log_det), float(np.linalg.slogdet(np.asarray(jacobian, np.float64))[1]), atol=1e-4)
    _, plain = _sampler._potential(model, data)
    _, moved = _sampler._potential(model, data, weights)
    expected = float(plain(ravel_pytree(v)[0])) - float(log_det)
    np.testing.assert_allclose(float(moved(flat_w)), expected, rtol=1e-5)
    # Non-centred (centre_offsets=False, or no Laplace start): no weights and no map; the model's own potential.
    begin = _sampler._pieces(model, _sampler.Settings(chains=2, centre_offsets=False), ())[0]
    _, start = jax.eval_shape(begin, jax.random.key(0), data)
    assert start["weights"] == {}
    _, empty = _sampler._potential(model, data, {})
    assert float(empty(ravel_pytree(v)[0])) == float(plain(ravel_pytree(v)[0]))


def test_centring_weights_follow_the_gaussian_case():
    """An offset whose group's value the runs pin with standard error s, under a spread tau: posterior variance
    v = s**2 / (tau**2 + s**2). With the spread known, the weight is 1 - v (centred where the runs pin the group,
    non-centred where they leave it at the prior); an uncertain spread takes it at tau exp(-CENTRING_SD sd)."""
    offsets = (("E_pop", "E_tau", "E_z"),)
    tau, s = 0.2, np.array([0.01, 0.2, 5.0])
    v = s**2 / (tau**2 + s**2)
    known = centring_weights(offsets, {"E_z": v, "E_tau": 0.0})["E_z"]
    np.testing.assert_allclose(known, 1 - v, rtol=1e-4)  # float32
    assert known[0] > 0.99 and known[2] < 0.01
    t = tau * np.exp(-CENTRING_SD * 0.5)
    loose = centring_weights(offsets, {"E_z": v, "E_tau": 0.25})["E_z"]  # log tau's sd 0.5
    np.testing.assert_allclose(loose, t**2 / (t**2 + s**2), rtol=1e-4)
