"""The pipeline: one module per DVC stage, in the order of the DAG (``dvc.yaml`` is the graph).

    prepare     build (or adapt) the benchmark, audit it, write its card      pipeline/prepare.py
    retrospect  train the retrospection LDM, cache MSR / DIRE representations pipeline/retrospect.py
    train       train one method on its training generators                   pipeline/train.py
    evaluate    score the test split with the trained method                  pipeline/evaluate.py
    ablate      train + evaluate one HRR ablation row                         pipeline/ablate.py
    study       seeds, cross-generator matrix, robustness of one method       pipeline/study.py
    figures     every figure from the outputs above                           pipeline/figures.py

Each module has ``run(cfg, paths[, item]) -> dict`` (what its notebook shows; it writes only
the outputs ``dvc.yaml`` declares for it) and ``load(cfg, paths[, item]) -> dict`` (the same
dict read back from those outputs, for a notebook opened by hand). Shared pieces (loaders,
fitting, scoring) are in :mod:`hrr_core.pipeline.common`; where things live on disk is
:mod:`hrr_core.pipeline.paths`.
"""

STAGES = ("prepare", "retrospect", "train", "evaluate", "ablate", "study", "figures")
