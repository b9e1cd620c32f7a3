"""Training commands: rebuild tagger's genre model from GTZAN or a user's labelled folders.

``tagger train prepare | fit | evaluate | export | cv`` (see docs/training.md). Modules:

- :mod:`training.datasets`  scan a folder-per-genre tree (GTZAN layout included), prepare a work dir
- :mod:`training.splits`    track-level stratified splits, split files, stratified k-fold
- :mod:`training.cache`     features on Ray workers, cached by file content + FeatureParams digest
- :mod:`training.architectures`  name -> model spec (default features, builder)
- :mod:`training.train`     fit one split or fold; write a run directory
- :mod:`training.evaluate`  track-level metrics, intervals, plots; cross-validation; export

Nothing here imports TensorFlow, Ray or librosa at import time.
"""
