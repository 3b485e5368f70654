"""hrr_core: Hierarchical Retrospection Refinement (arXiv 2502.17862) and baselines.

The library behind the notebooks and the DVC pipeline: data, models, losses, training,
evaluation, and the pipeline stages and apps built on them (README, "Layout"). Notebooks only
orchestrate and plot.
"""

__version__ = "0.1.0"
