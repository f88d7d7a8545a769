"""Settings every layer shares: the library version, the ambiguity threshold, and how a
``random_state`` becomes seeds. Importing this module imports nothing else.

(The compute dtype context lives with the data preparation, :mod:`bayesgmm.engine.preprocessing`,
because it depends on JAX's configuration; the compile cache's settings in
:mod:`bayesgmm.base.compile_cache`.)
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__version__ = "0.1.0"

#: Probability of the most probable cluster below which a row's assignment is called ambiguous:
#: the default of ``BayesianGaussianMixture(ambiguity_threshold=...)``, and the threshold of
#: the summaries of models that have none (EM fits).
AMBIGUITY_THRESHOLD = 0.8


def seed_from(random_state) -> int:
    """A 31-bit integer seed (for the starts' draws and ``jax.random``) from ``random_state``
    (int, numpy RandomState or Generator, or None for fresh entropy)."""
    import numpy as np

    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, numbers.Integral):
        return int(np.random.SeedSequence(int(random_state)).generate_state(1)[0] >> 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise ValueError(f"random_state={random_state!r} must be None, an int, a "
                     "numpy.random.RandomState or a numpy.random.Generator")


def numpy_rng(random_state) -> np.random.RandomState | np.random.Generator:
    """numpy's generator for ``random_state`` (scikit-learn's convention: a given generator
    is used as is, an int or None seeds a new ``RandomState``)."""
    import numpy as np

    if isinstance(random_state, np.random.Generator | np.random.RandomState):
        return random_state
    return np.random.RandomState(random_state)
