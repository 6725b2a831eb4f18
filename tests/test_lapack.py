"""The guard against jaxlib 0.10's deadlocking batched LAPACK calls (bayes_scaling/_lapack.py)."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import pytest

import bayes_scaling  # noqa: F401  (installs the guard)
from bayes_scaling import _lapack

GUARDED = _lapack.affected()


def test_the_guard_is_on_exactly_for_the_affected_jaxlib_releases():
    assert [_lapack.affected(v) for v in ("0.9.2", "0.10.0", "0.10.2", "0.11.0", "0.11.1", "0.12.0")] == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert bool(_lapack._installed) == GUARDED, jaxlib.__version__
    if GUARDED:  # the primitives this package's programs use are among those guarded
        assert {"cholesky_p", "lu_p", "eigh_p"} <= set(_lapack._installed)


def spd(batch: tuple, n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(*batch, n, n)).astype(np.float32)
    return x @ np.swapaxes(x, -1, -2) + n * np.eye(n, dtype=np.float32)


def program(m: np.ndarray) -> list[jax.Array]:
    """Every factorization and solve this package's programs use, on a batch of matrices."""
    chol = jnp.linalg.cholesky(m)
    solved = jax.scipy.linalg.solve_triangular(chol, m, lower=True)
    w, v = jnp.linalg.eigh(m)
    return [chol, solved, jnp.linalg.inv(m), w, v]


@pytest.mark.skipif(not GUARDED, reason=f"jaxlib {jaxlib.__version__} has no parallel batched LAPACK path")
def test_batched_lapack_calls_are_compiled_as_single_matrix_calls():
    text = jax.jit(program).lower(jnp.asarray(spd((2, 3), 5))).as_text()
    calls = [line for line in text.splitlines() if "lapack_" in line and "_ffi" in line]
    names = {line.split("@lapack_")[1].split("(")[0] for line in calls}
    assert {"spotrf_ffi", "strsm_ffi", "ssyevd_ffi", "sgetrf_ffi"} <= names, names
    assert all("tensor<5x5xf32>" in line and "x5x5xf32" not in line for line in calls), calls


def test_batched_factorizations_give_each_matrix_s_own_to_the_bit():
    m = spd((2, 3), 6, seed=1)
    batched = jax.jit(program)(m)
    for i in range(2):
        for j in range(3):
            for whole, one in zip(batched, jax.jit(program)(m[i, j]), strict=True):
                assert np.array_equal(whole[i, j], one)
    np.testing.assert_allclose(batched[0], np.linalg.cholesky(m), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[2], np.linalg.inv(m), rtol=1e-4, atol=1e-5)
    # An empty batch still has the right shapes.
    assert [a.shape for a in jax.jit(program)(np.zeros((0, 4, 4), np.float32))] == [(0, 4, 4)] * 3 + [(0, 4), (0, 4, 4)]


# Two independent (4, 160, 160) factorizations per step of one program, in three threads at once: under
# jaxlib 0.10.2 without the guard this hangs at once on a 2-core machine (every intra-op thread waits in
# ParallelBatchMap for pieces no thread is free to run); seen here, and the calibrated fit of the grouped
# Porian et al. runs hung the same way.
PROGRAM = textwrap.dedent(
    """
    import threading, bayes_scaling, jax, jax.numpy as jnp

    @jax.jit
    def run(x, y):
        def step(c, _):
            x, y = c
            a = jnp.linalg.cholesky(x @ jnp.swapaxes(x, -1, -2) + 160 * jnp.eye(160))
            b = jnp.linalg.cholesky(y @ jnp.swapaxes(y, -1, -2) + 160 * jnp.eye(160))
            return (x + 1e-3 * jnp.tanh(b), y + 1e-3 * jnp.sin(a)), None
        return jax.lax.scan(step, (x, y), None, length=100)[0]

    x, y = jnp.full((4, 160, 160), 0.01), jnp.full((4, 160, 160), 0.02)
    jax.block_until_ready(run(x, y))
    threads = [threading.Thread(target=lambda: jax.block_until_ready(run(x, y))) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print("finished")
    """
)


def test_concurrent_batched_factorizations_finish():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "finished", out.stderr[-2000:]
