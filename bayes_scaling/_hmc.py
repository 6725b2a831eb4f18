"""Jittered-length HMC: a sampler with no data-dependent loop, for many fits in one batch.

NUTS decides each trajectory's length from the trajectory itself. Vmapped over a
batch of fits, its tree-building loop runs until the slowest chain of the batch
is done, and on a GPU every iteration of that loop is a round trip to the host.
With 256 chains the batch pays for the longest trajectory of 256 every iteration
(measured here: mean 9 leapfrog steps per chain, batch maximum 31-79).

This sampler follows the idea behind ChEES-HMC and MEADS (Hoffman et al. 2021,
Hoffman & Sountsov 2022): the chains of a fit share a step size, and the
trajectory length is drawn at random each iteration, ``T = u * 2 * T_mean`` with
one ``u ~ Uniform(0, 1)`` for the whole batch. Jittering the length removes the
resonances of fixed-length HMC; sharing ``u`` makes every fit of the batch take
about the same number of leapfrog steps, so no lane waits for another.

It works in whitened coordinates ``x = mode + L u`` (``L`` the Cholesky factor of
the Laplace covariance, re-estimated half-way through warm-up from the chains'
own draws), where a well-parameterized posterior has scales near one; the mean
trajectory length ``T_mean = pi / 2`` is a quarter period of a unit Gaussian.
The step size is adapted by dual averaging (Hoffman & Gelman 2014) on the mean
acceptance probability of the fit's chains.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

#: Mean trajectory length in whitened units: a quarter period of a unit-scale Gaussian.
T_MEAN = jnp.pi
#: Energy error above which a transition counts as divergent.
DIVERGENCE = 1000.0


def _dual_averaging(log_eps0: jax.Array) -> dict:
    return {"log_eps": log_eps0, "log_eps_bar": log_eps0, "h_bar": 0.0 * log_eps0, "t": 0.0 * log_eps0}


def _dual_update(state: dict, accept: jax.Array, target: float, mu: jax.Array) -> dict:
    """One Nesterov dual-averaging step towards acceptance ``target`` (gamma 0.05, t0 10, kappa 0.75)."""
    t = state["t"] + 1.0
    eta = 1.0 / (t + 10.0)
    h_bar = (1.0 - eta) * state["h_bar"] + eta * (target - accept)
    log_eps = mu - jnp.sqrt(t) / 0.05 * h_bar
    w = t**-0.75
    return {"log_eps": log_eps, "log_eps_bar": w * log_eps + (1.0 - w) * state["log_eps_bar"], "h_bar": h_bar, "t": t}


def sample(
    potential: Callable[[jax.Array], jax.Array],
    mode: jax.Array,
    cov: jax.Array,
    starts: jax.Array,
    key: jax.Array,
    jitter: jax.Array,
    warmup: int,
    target_accept: float,
    max_steps: int,
) -> tuple[jax.Array, dict]:
    """Run jittered-length HMC chains for one fit.

    Parameters
    ----------
    potential : negative log density of a flat unconstrained vector, shape (dim,) -> ().
    mode, cov : centre and covariance used to whiten, shapes (dim,) and (dim, dim).
    starts : initial points, shape (chains, dim).
    key : this fit's PRNG key.
    jitter : shape (warmup + draws,), one Uniform(0, 1) per iteration, shared by a
        batch of fits (drawn outside any vmap).
    warmup : adaptation iterations (discarded by the caller).
    target_accept : dual-averaging target for the mean acceptance probability.
    max_steps : cap on leapfrog steps per iteration.

    Returns
    -------
    ``zs`` of shape (warmup + draws, chains, dim) and sampler statistics, each of
    shape (warmup + draws, chains).
    """
    chains, dim = starts.shape
    value_grad = jax.vmap(jax.value_and_grad(potential))

    def whitened(centre: jax.Array, chol: jax.Array) -> Callable:
        def vg(u: jax.Array) -> tuple[jax.Array, jax.Array]:
            v, g = value_grad(centre + u @ chol.T)
            return v, g @ chol

        return vg

    def leapfrogs(vg: Callable, u: jax.Array, p: jax.Array, v: jax.Array, g: jax.Array, eps: jax.Array, n: jax.Array):
        def body(_: int, c: tuple) -> tuple:
            u, p, v, g = c
            p = p - 0.5 * eps * g
            u = u + eps * p
            v, g = vg(u)
            return u, p - 0.5 * eps * g, v, g

        return jax.lax.fori_loop(0, n, body, (u, p, v, g))

    def phase(state: tuple, keys: jax.Array, jit: jax.Array, centre, chol, adapt: bool, mu: jax.Array):
        vg = whitened(centre, chol)

        def one(s: tuple, inp: tuple) -> tuple:
            u, v, g, da = s
            k, j = inp
            k_p, k_a = jax.random.split(k)
            eps = jnp.exp(da["log_eps"] if adapt else da["log_eps_bar"])
            n = jnp.clip(jnp.ceil(j * 2.0 * T_MEAN / eps), 1, max_steps).astype(jnp.int32)
            p = jax.random.normal(k_p, u.shape)
            u1, p1, v1, g1 = leapfrogs(vg, u, p, v, g, eps, n)
            h0 = v + 0.5 * jnp.sum(p**2, -1)
            h1 = v1 + 0.5 * jnp.sum(p1**2, -1)
            dh = jnp.where(jnp.isfinite(h1), h1 - h0, jnp.inf)
            prob = jnp.exp(-jnp.maximum(dh, 0.0))
            take = jax.random.uniform(k_a, (chains,)) < prob
            u = jnp.where(take[:, None], u1, u)
            v = jnp.where(take, v1, v)
            g = jnp.where(take[:, None], g1, g)
            if adapt:
                da = _dual_update(da, jnp.mean(prob), target_accept, mu)
            stats = {
                "diverging": dh > DIVERGENCE,
                "energy": jnp.where(take, h1, h0),
                "lp": -v,
                "n_steps": jnp.broadcast_to(n, (chains,)),
                "acceptance_rate": prob,
                "step_size": jnp.broadcast_to(eps, (chains,)),
            }
            return (u, v, g, da), (centre + u @ chol.T, stats)

        return jax.lax.scan(one, state, (keys, jit))

    keys = jax.random.split(key, jitter.shape[0])
    half = warmup // 2
    # Phase 1: whiten with the Laplace covariance, adapt the step size.
    chol = jnp.linalg.cholesky(cov)
    u0 = jax.scipy.linalg.solve_triangular(chol, (starts - mode).T, lower=True).T
    v0, g0 = whitened(mode, chol)(u0)
    eps0 = jnp.asarray(0.5, starts.dtype)
    state = (u0, v0, g0, _dual_averaging(jnp.log(eps0)))
    state, (z1, s1) = phase(state, keys[:half], jitter[:half], mode, chol, True, jnp.log(10 * eps0))
    # Re-estimate the covariance from the second quarter of warm-up, shrunk towards the Laplace one.
    window = z1[half // 2 :].reshape(-1, dim)
    n = window.shape[0]
    centre = jnp.mean(window, 0)
    emp = jnp.cov(window, rowvar=False).reshape(dim, dim)
    new_cov = (n * emp + 20.0 * cov) / (n + 20.0)
    new_chol = jnp.linalg.cholesky(new_cov)
    ok = jnp.all(jnp.isfinite(new_chol))
    new_chol = jnp.where(ok, new_chol, chol)
    centre = jnp.where(ok, centre, mode)
    u, _, _, da = state
    x = mode + u @ chol.T
    u = jax.scipy.linalg.solve_triangular(new_chol, (x - centre).T, lower=True).T
    v, g = whitened(centre, new_chol)(u)
    eps = jnp.exp(da["log_eps_bar"])
    state = (u, v, g, _dual_averaging(jnp.log(eps)))
    # Phase 2: adapt the step size in the new whitening; then sample with it fixed.
    state, (z2, s2) = phase(state, keys[half:warmup], jitter[half:warmup], centre, new_chol, True, jnp.log(10 * eps))
    _, (z3, s3) = phase(state, keys[warmup:], jitter[warmup:], centre, new_chol, False, jnp.log(10 * eps))
    zs = jnp.concatenate([z1, z2, z3])
    stats = jax.tree.map(lambda *a: jnp.concatenate(a), s1, s2, s3)
    return zs, stats
