"""Studies' search machinery: search spaces, quasi-random samplers, Gaussian-process Bayesian
optimisation and the keras-tuner oracles built on them.

`space`, `keras_space` (the keras-tuner space mapping), `halton`, `gp` and `bayes` are pure
NumPy/SciPy. `oracles` (the public path of `quasi_random_oracle`, `bayesian_oracle` and their base
`space_oracle`) imports keras_tuner (and so Keras): import it explicitly,
`from tfplaybook.search import oracles`. Modules here import only `tfplaybook.config`,
`tfplaybook.internals` (the oracles' keras-tuner internals) and each other: the search never
imports training, a study or the analysis, which all import it.
"""

from tfplaybook.search.space import SearchSpace, parse

__all__ = ["SearchSpace", "parse"]
