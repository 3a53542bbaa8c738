"""mcef: Multimodal Correlated Equal Fusion for emotion recognition in conversations.

The package holds every module, loss, training loop and plot that the book uses:
``mcef.data`` (datasets, readers, synthetic default, batching), ``mcef.model`` (the network),
``mcef.losses`` (cross-entropy, Soft-HGR, self-distillation), ``mcef.train`` (runs), ``mcef.book``
(the notebook runner).
"""

__version__ = "0.1.0"
