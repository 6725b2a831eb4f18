"""A guard against a deadlock of batched LAPACK calls on the CPU in jaxlib 0.10.0 - 0.11.0.

Those jaxlib releases split a batched LAPACK call (Cholesky factorizations and triangular solves of
each chain's mass matrix, LU or eigendecompositions of a batch of Hessians, ...) across XLA's
intra-op thread pool and block until the pieces are done. When every thread of that pool is itself
blocked in such a call, no thread is left to run the pieces: the process hangs at 0% CPU, for ever.
On a 2-core machine two such calls at once suffice: the two halves of a fit's chains, a fit beside
its internal refits, or two independent factorizations in one program. Seen here: the calibrated
fit of the 1,160 grouped runs of Porian et al. (39 dimensions) hung in the factorizations of its
chains' mass matrices; a program with two (4, 160, 160) Cholesky factorizations per step hung
with no Python threads at all. jaxlib 0.11.1 removed the parallel path.

:func:`install` (run when the package is imported; nothing happens unless jaxlib is affected)
lowers every batched call of those primitives on the CPU as a loop of single-problem calls: the
same LAPACK routine on each matrix (the same numbers, to the bit), none of them split, so none waits
for the pool. It applies to every program traced in the process after the import, this package's
or not.
"""

from __future__ import annotations

import math

import jax
import jaxlib

#: jaxlib releases whose CPU LAPACK kernels split a batch across the intra-op pool and wait for it.
AFFECTED = ((0, 10, 0), (0, 11, 1))
#: The LAPACK primitives (of ``jax._src.lax.linalg``) with a CPU kernel, each with the rank of one
#: problem in its first operand (a matrix; the diagonals of a tridiagonal system): every leading axis
#: beyond it, in every operand and result, is the batch.
PRIMITIVES = {
    "cholesky_p": 2,
    "triangular_solve_p": 2,
    "lu_p": 2,
    "eigh_p": 2,
    "eig_p": 2,
    "svd_p": 2,
    "geqrf_p": 2,
    "geqp3_p": 2,
    "householder_product_p": 2,
    "ormqr_p": 2,
    "hessenberg_p": 2,
    "schur_p": 2,
    "tridiagonal_p": 2,
    "tridiagonal_solve_p": 1,
}

_installed: list[str] = []


def affected(version: str = jaxlib.__version__) -> bool:
    """Whether jaxlib ``version`` has the deadlocking parallel path."""
    numbers = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    return AFFECTED[0] <= numbers < AFFECTED[1]


def install() -> list[str]:
    """Lower batched LAPACK calls on the CPU as loops of single-matrix calls (once; idempotent).

    Returns the names of the primitives guarded (empty where jaxlib is not affected).
    """
    if _installed or not affected():
        return _installed
    from jax._src.interpreters import mlir
    from jax._src.lax import linalg

    table = mlir._platform_specific_lowerings["cpu"]
    for name, rank in PRIMITIVES.items():
        primitive = getattr(linalg, name, None)
        entry = table.get(primitive) if primitive is not None else None
        if entry is None:
            continue
        mlir.register_lowering(primitive, _one_at_a_time(primitive, rank, entry.rule, mlir), platform="cpu")
        _installed.append(name)
    return _installed


def _one_at_a_time(primitive: object, rank: int, original: object, mlir: object) -> object:
    """A CPU lowering of ``primitive`` that runs ``original`` on one problem (of ``rank`` in the first operand) at a
    time."""

    def rule(ctx: object, *operands: object, **params: object) -> object:
        shape = ctx.avals_in[0].shape
        batch = shape[: len(shape) - rank]
        if math.prod(batch) <= 1:  # one matrix (or none): nothing to split
            return original(ctx, *operands, **params)

        def each(*arrays: jax.Array) -> list[jax.Array]:
            flat = [a.reshape((-1, *a.shape[len(batch) :])) for a in arrays]
            single = lambda xs: primitive.bind(*xs, **params)  # noqa: E731  (lowered by ``original``)
            out = jax.lax.map(single, flat)
            out = out if primitive.multiple_results else [out]
            return [o.reshape((*batch, *o.shape[1:])) for o in out]

        return mlir.lower_fun(each, multiple_results=True)(ctx, *operands)

    return rule


install()  # when the package is imported (``bayes_scaling/__init__.py`` imports this module first)
