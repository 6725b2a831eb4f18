import jax
import numpy as np

import bayes_scaling as bs
from bayes_scaling._model import model_data, stack_data
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
