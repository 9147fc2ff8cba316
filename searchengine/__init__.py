"""Multimodal semantic image search: the core (config, models, store, search).

The core never imports :mod:`indexer` or :mod:`web`; those are edges over it.
"""

__version__ = "0.1.0"
