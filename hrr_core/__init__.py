"""hrr_core: Hierarchical Retrospection Refinement (arXiv 2502.17862) and baselines.

The library behind the notebooks and the DVC pipeline: data, models, losses, training,
evaluation. Every computation lives here and is unit-tested; notebooks only orchestrate.
"""

__version__ = "0.1.0"
