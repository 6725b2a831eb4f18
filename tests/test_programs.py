"""The program registry: programs stored on disk are read back instead of traced, keyed by what they depend on."""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayes_scaling as bs
from bayes_scaling import _programs, _sampler
from bayes_scaling._model import Target
from bayes_scaling._programs import Programs
from bayes_scaling._sampler import layout, sample


@pytest.fixture
def store(tmp_path):
    """The folder of a fresh registry: a new ``Programs`` in a test plays a new process."""
    return tmp_path / "programs"


def fresh(store, traced, tag):
    """The ``2 * cumsum`` program as a fresh process would find it, in a new registry stored in ``store``."""
    return Programs(store).get("cumsum", lambda: counted(traced), tag)


def counted(traced: list):
    """A new jitted ``2 * cumsum(x)`` (as a fresh process would build it) that records each trace."""

    def f(x):
        traced.append(x.shape)  # runs only while JAX traces f
        return jnp.cumsum(x) * 2.0

    return jax.jit(f)


def test_a_stored_program_is_read_back_instead_of_traced(store):
    traced = []
    x = jnp.arange(5.0)
    first = fresh(store, traced, "cumsum")(x)
    assert traced == [(5,)] and len(list(store.glob("*.jaxexport"))) == 1
    again = fresh(store, traced, "cumsum")(x)
    assert traced == [(5,)]  # read from disk, not traced
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(first, [0, 2, 6, 12, 20])
    fresh(store, traced, "cumsum")(jnp.arange(7.0))  # another shape: another program
    fresh(store, traced, "other tag")(x)  # another tag: another program
    assert traced == [(5,), (7,), (5,)] and len(list(store.glob("*.jaxexport"))) == 3


def test_an_unreadable_stored_program_is_traced_again(store):
    traced = []
    fresh(store, traced, "cumsum")(jnp.ones(3))
    (path,) = store.glob("*.jaxexport")
    path.write_bytes(b"not a program")
    out = fresh(store, traced, "cumsum")(jnp.ones(3))
    np.testing.assert_array_equal(out, [2, 4, 6])
    assert len(traced) == 2 and path.read_bytes() != b"not a program"  # traced and stored again


def test_an_unwritable_cache_folder_does_not_stop_the_computation(tmp_path):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    # The folder cannot be created: its parent is a file.
    np.testing.assert_array_equal(fresh(blocked / "programs", [], "cumsum")(jnp.ones(3)), [2, 4, 6])


def test_nothing_is_stored_without_a_tag_or_when_off(store):
    calls = Programs(store).get("times 3", lambda: jax.jit(lambda x: x * 3.0))
    np.testing.assert_array_equal(calls(jnp.ones(2)), 3 * np.ones(2))
    off = Programs(None).get("times 3", lambda: jax.jit(lambda x: x * 3.0), "a tag")
    np.testing.assert_array_equal(off(jnp.ones(2)), 3 * np.ones(2))
    assert not store.exists()
    # A law defined outside the package is never stored: its code is not in the source hash.
    mine = bs.Law("mine", lambda p, x: jnp.log(p["E"]) + 0 * x["N"], params=("E",), inputs=("N",))
    assert mine.tag is None
    assert "chinchilla" in bs.laws.get("chinchilla").tag
    power_n, power_d = (bs.laws.get(name).tag for name in ("power-n", "power-d"))
    assert power_n != power_d  # the same function, built for a different input


def test_one_registry_entry_per_key():
    registry, built = Programs(), []

    def build():
        built.append(1)
        return lambda x: x + 1.0

    first = registry.get(("plus one", 1), build)
    assert registry.get(("plus one", 1), build) is first and built == [1]
    assert registry.get(("plus one", 2), build) is not first and built == [1, 1]


def _normal_model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=data["y"])


#: A normal mean (20 observations around 3): a sampler cheap to compile.
NORMAL = Target(_normal_model, lambda data, key: {"mu": jnp.zeros(())}, ("mu",), "normal mean", "normal mean")
NORMAL_DATA = {"y": jnp.asarray(np.random.default_rng(0).normal(3.0, 1.0, 20), jnp.float32)}


def test_a_stored_sampler_gives_the_same_draws_as_a_traced_one(store, capsys, monkeypatch):
    """NUTS in chunks, its NumPyro state passed between stored programs, read back bit for bit."""
    settings = bs.Settings(chains=2, warmup=40, draws=60)
    data, normal = NORMAL_DATA, NORMAL
    monkeypatch.setattr("bayes_scaling._sampler.PROGRAMS", Programs(store))
    traced = sample(normal, settings, jax.random.key(1), data)
    stored = len(list(store.glob("*.jaxexport")))
    assert stored == 3  # begin, advance (one chunk size) and finish; the convergence checks run on the host
    monkeypatch.setattr("bayes_scaling._sampler.PROGRAMS", Programs(store))  # a fresh process: read back
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: a bar
    read = sample(normal, settings, jax.random.key(1), data, progress=True)
    assert len(list(store.glob("*.jaxexport"))) == stored
    jax.tree.map(np.testing.assert_array_equal, read, traced)
    bar = capsys.readouterr().err  # drawn by the host between chunks: 20 chunks of 5 iterations
    assert bar.count("\rsampling [") == 20 and bar.endswith("100/100 iterations\n")
    # In a log (not a terminal): a line per quarter, once a fit has run QUIET_SECONDS (here 0).
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr("bayes_scaling._sampler.QUIET_SECONDS", 0.0)
    sample(normal, settings, jax.random.key(1), data, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"sampling: {k}/100 iterations" for k in (25, 50, 75, 100)]
    assert traced.samples["mu"].shape == (2, 60)
    assert abs(float(traced.samples["mu"].mean()) - float(data["y"].mean())) < 0.5  # sd of the mean ~0.22


def first_fit_logged(programs: Programs, monkeypatch, caplog) -> list[str]:
    """JAX's compilation log messages of a first small fit whose programs ``programs`` holds."""
    monkeypatch.setattr("bayes_scaling._sampler.PROGRAMS", programs)
    jax.config.update("jax_log_compiles", True)  # for every thread (the context manager is the calling thread's)
    try:
        with caplog.at_level("WARNING", logger="jax._src.dispatch"):
            sample(NORMAL, bs.Settings(chains=2, warmup=40, draws=60), jax.random.key(1), NORMAL_DATA)
    finally:
        jax.config.update("jax_log_compiles", False)
    return [r.getMessage() for r in caplog.records]


def test_a_first_stored_fit_compiles_each_program_once(store, monkeypatch, caplog):
    """On an empty cache ``advance`` and ``finish`` are compiled ahead, in a helper thread, while ``begin``
    compiles; the calls then find them (arguments shaped and placed as the calls' own: a program compiled for
    unplaced shapes was compiled a second time when called)."""
    messages = first_fit_logged(Programs(store), monkeypatch, caplog)
    compiled = [m.split(" in ")[0] for m in messages if "Finished XLA compilation of jit(call)" in m]
    started = [m for m in messages if m.startswith("Compiling jit(call)")]
    assert len(compiled) == 3 and len(set(started)) == len(started) == 3  # begin, advance, finish: once each


def test_a_first_fit_kept_in_memory_compiles_each_program_once(monkeypatch, caplog):
    """Without the disk cache (a Python session that never calls ``enable_cache``) the programs are jitted
    functions, called with unplaced arrays: compiled ahead for placed shapes, ``advance`` and ``finish`` were
    compiled again at their first call."""
    messages = first_fit_logged(Programs(None), monkeypatch, caplog)
    compiled = [
        m.split(" in ")[0].removeprefix("Finished XLA compilation of ")
        for m in messages
        if m.startswith("Finished XLA compilation of jit(")
    ]
    assert sorted(c for c in compiled if c in ("jit(begin)", "jit(advance)", "jit(finish)")) == [
        "jit(advance)",
        "jit(begin)",
        "jit(finish)",
    ], compiled


def _record_advance(monkeypatch, record) -> None:
    """Make every fit's ``advance`` call ``record(state, first)`` before each chunk it runs."""
    chunked = _sampler._chunked

    class Recorded:
        def __init__(self, program):
            self.program = program

        def __call__(self, state, data, first):
            record(state, first)
            return self.program(state, data, first)

        def __getattr__(self, name):  # prepare, shapes: the program's own
            return getattr(self.program, name)

    def recording(target, settings):
        begin, advance, finish = chunked(target, settings)
        return begin, Recorded(advance), finish

    monkeypatch.setattr(_sampler, "_chunked", recording)


def test_a_fit_splits_its_chains_across_cores_and_keeps_its_seed(monkeypatch):
    """On a CPU, chains advance in parts of at most two (each chain by one chain's program), the parts in threads
    of their own or one after another: the same seed gives the same draws with any number of cores."""
    assert [layout(4, cores, "cpu") for cores in (1, 2, 3, 4, 16)] == [(2, 1), (2, 2), (2, 2), (2, 2), (2, 2)]
    assert layout(3, 2, "cpu") == (3, 2) and layout(1, 4, "cpu") == (1, 1) and layout(8, 2, "cpu") == (4, 2)
    # On an accelerator one device runs every chain at once (a fit there has cores=1: one part, vectorized).
    assert [layout(4, cores, "gpu") for cores in (1, 2, 3, 4)] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    seen = []  # each call of ``advance``: its thread and chains
    _record_advance(monkeypatch, lambda state, first: seen.append((threading.get_ident(), state["z"].shape[0])))
    settings = bs.Settings(chains=4, warmup=40, draws=60)
    split = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, cores=2)
    assert {width for _, width in seen} == {2} and len({thread for thread, _ in seen}) == 2
    assert len(seen) == 2 * 20  # each part in 20 chunks
    again = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, cores=2)
    jax.tree.map(np.testing.assert_array_equal, again, split)
    assert split.samples["mu"].shape == (4, 60) and split.stats["diverging"].shape == (4, 60)
    # One core: the same two parts one after another in the calling thread, the same draws, bit for bit.
    del seen[:]
    alone = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA)
    assert {width for _, width in seen} == {2} and {thread for thread, _ in seen} == {threading.get_ident()}
    assert len(seen) == 2 * 20
    jax.tree.map(np.testing.assert_array_equal, alone, split)
    # Parts of 1 chain run each chain by the same one chain's program (NUTS mapped): the same draws, bit for bit.
    monkeypatch.setattr(_sampler, "MAPPED", 1)
    singles = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, cores=4)
    monkeypatch.setattr(_sampler, "MAPPED", 2)
    jax.tree.map(np.testing.assert_array_equal, singles, split)
    whole = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, whole=True)
    # The same posterior as the one-program sampler's (4 chains vectorized): the mean of mu agrees within 0.2 (its
    # posterior sd is 0.22; the mean of 240 draws has a Monte Carlo error of about 0.03).
    assert abs(float(split.samples["mu"].mean()) - float(whole.samples["mu"].mean())) < 0.2
    assert abs(float(split.samples["mu"].mean()) - float(NORMAL_DATA["y"].mean())) < 0.5
    # Keeping the first 25 draws (as internal backtest refits do): the same programs stop after the 13th chunk
    # (40 warm-up + 25 draws, chunks of 5) of each part, and the draws are the full fit's first 25, bit for bit.
    del seen[:]
    first = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25)
    assert len(seen) == 2 * 13
    assert first.samples["mu"].shape == (4, 25) and first.stats["diverging"].shape == (4, 25)
    np.testing.assert_array_equal(first.samples["mu"], alone.samples["mu"][:, :25])
    np.testing.assert_array_equal(first.stats["energy"], alone.stats["energy"][:, :25])
    # Told to go on by ``more`` (as a refit whose first draws fail a check): the chains continue where they
    # stopped, 7 chunks more of each part, and give the full fit's draws.
    del seen[:]
    checked = []
    rest = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25, more=lambda out: checked.append(out))
    assert len(seen) == 2 * 13 and len(checked) == 1 and rest.samples["mu"].shape == (4, 25)  # more said no (None)
    del seen[:]
    every = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25, more=lambda out: True)
    assert len(seen) == 2 * 20
    jax.tree.map(np.testing.assert_array_equal, every, alone)


def test_a_refit_enters_the_warm_up_at_its_last_mass_matrix_window(monkeypatch):
    """A refit (``refit=True``: internal backtests, a review's refits) starts its chains at iteration
    ``refit_entry`` of the warm-up, in the adaptation window that holds it (NumPyro's schedule, written out), and
    runs the same programs from there: fewer iterations, the same posterior, the same draws for the same seed."""
    from numpyro.infer.hmc_util import build_adaptation_schedule

    for warmup in (1, 19, 20, 21, 100, 149, 150, 151, 500, 777, 1000, 5000):
        assert _sampler._schedule(warmup) == [(w.start, w.end) for w in build_adaptation_schedule(warmup)], warmup
    # The defaults: windows end at 74, 99, 149, 249, 449, 499, chunks of 75; halfway into 250-449, whole chunks.
    assert _sampler.refit_entry(bs.Settings()) == 300
    assert _sampler.refit_entry(bs.Settings(warmup=1000, draws=2000)) == 600  # window 450-949, chunks of 150
    assert _sampler.refit_entry(bs.Settings(warmup=10, draws=10)) == 0  # one window: nothing to enter
    assert _sampler.refit_entry(bs.Settings(laplace_init=False)) == 0  # chains from the prior: the whole warm-up
    settings = bs.Settings(chains=4, warmup=40, draws=60)  # windows 0-5, 6-35, 36-39; chunks of 5
    assert _sampler.refit_entry(settings) == 20
    seen = []  # each call of ``advance``: its first iteration, the state's iteration count and window

    def record(state, first):
        seen.append((int(first), np.asarray(state["i"]).tolist(), np.asarray(state["adapt_state"]["window_idx"])))

    _record_advance(monkeypatch, record)
    short = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25, refit=True)
    # Two parts of 2 chains, each from iteration 20 to 65 (40 warm-up + 25 draws): 9 chunks, not 13.
    assert sorted({first for first, _, _ in seen}) == list(range(20, 65, 5)) and len(seen) == 2 * 9
    assert seen[0][1] == [20, 20] and seen[0][2].tolist() == [1, 1]  # counted from 20, in window 6-35
    assert short.samples["mu"].shape == (4, 25) and short.stats["diverging"].shape == (4, 25)
    again = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25, refit=True)
    jax.tree.map(np.testing.assert_array_equal, again, short)
    full = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25)
    assert not np.array_equal(full.samples["mu"], short.samples["mu"])
    # The same posterior: mu's mean within 0.2 of the full warm-up's (sd 0.22; Monte Carlo error of 100 draws'
    # mean about 0.03) and of the data's mean (the flat-prior posterior's centre).
    assert abs(float(short.samples["mu"].mean()) - float(full.samples["mu"].mean())) < 0.2
    assert abs(float(short.samples["mu"].mean()) - float(NORMAL_DATA["y"].mean())) < 0.2
    # Told to go on (its first draws failed a check): the same chains to all 60 draws, 7 chunks more per part.
    del seen[:]
    every = sample(NORMAL, settings, jax.random.key(1), NORMAL_DATA, keep=25, refit=True, more=lambda out: True)
    assert len(seen) == 2 * (9 + 7) and every.samples["mu"].shape == (4, 60)
    np.testing.assert_array_equal(every.samples["mu"][:, :25], short.samples["mu"])


@pytest.mark.parametrize("stored", [False, True])
def test_prepare_compiles_ahead_and_shapes_tells_the_outputs(store, stored):
    traced = []
    program = Programs(store).get("prepared", lambda: counted(traced), "cumsum prepared" if stored else None)
    assert program.shapes(jax.ShapeDtypeStruct((4,), jnp.float32)) == jax.ShapeDtypeStruct((4,), jnp.float32)
    program.prepare(jax.ShapeDtypeStruct((4,), jnp.float32))
    assert traced == [(4,)]
    np.testing.assert_array_equal(program(jnp.ones(4, jnp.float32)), [2, 4, 6, 8])
    assert traced == [(4,)]  # the call found the prepared program: no second trace
    assert len(list(store.glob("*.jaxexport"))) == (1 if stored else 0)


@pytest.mark.parametrize("stored", [False, True])
def test_threads_asking_for_a_new_program_at_once_compile_it_once(store, stored):
    traced, compiled = [], []

    def slow(x):
        traced.append(x.shape)  # runs only while JAX traces it
        time.sleep(0.2)  # a long trace: every thread asks before the first is done
        return jnp.cumsum(x) * 2.0

    def listen(event, seconds, **_):
        compiled.append(event == "/jax/core/compile/backend_compile_duration")

    program = Programs(store).get("slow", lambda: jax.jit(slow), "slow cumsum" if stored else None)
    inputs = [jnp.full(6, float(i)) for i in range(16)]
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda x: np.asarray(program(x)), inputs))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert traced == [(6,)] and sum(compiled) == 1  # each thread compiling its own copy would read 8
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, 2.0 * i * np.arange(1, 7))


def test_compiler_options_leave_out_what_this_xla_does_not_know_and_keep_the_results(monkeypatch, store):
    """An option this XLA rejects is left out (passing it would stop every fit with an error); a program compiled
    with the options computes what it does with XLA's defaults, stored and read back alike."""
    monkeypatch.setattr(_programs, "SAMPLER", {**_programs.SAMPLER, "xla_no_such_option": True})
    options = _programs.compiler_options(once=True)
    assert "xla_no_such_option" not in options
    assert options["xla_backend_optimization_level"] == 0  # every XLA this package supports knows it

    def f(x):
        return jnp.sum(jnp.exp(jnp.sin(x)) * x)

    x = jnp.linspace(0.0, 3.0, 257)
    expected = float(jax.jit(f)(x))
    registry = Programs(store)
    first = registry.get("f", lambda: jax.jit(f), "f", options)
    assert float(first(x)) == pytest.approx(expected, rel=1e-6)
    again = Programs(store).get("f", lambda: jax.jit(f), "f", options)  # a new process: read back from disk
    assert float(again(x)) == pytest.approx(expected, rel=1e-6)
    assert list(store.glob("*.jaxexport"))
