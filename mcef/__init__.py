"""mcef: Multimodal Correlated Equal Fusion for emotion recognition in conversations.

The library: ``mcef.data`` (datasets, readers, synthetic default, batching), ``mcef.features`` (text features),
``mcef.model`` (the network), ``mcef.losses`` (cross-entropy, Soft-HGR, self-distillation), ``mcef.train`` (runs),
``mcef.runs`` (the run store). ``mcef.book`` (the ``book`` extra) holds the book's chapters and its runner.
"""

__version__ = "0.1.0"
