"""The one exception family of the project.

The core raises these with messages that name the object and the fix; the edges
(CLI, web app) translate them and never show a traceback for them.
"""


class SearchEngineError(Exception):
    """Base class: anything the user can act on."""


class ModelNotFound(SearchEngineError):
    """An encoder name or tag is unknown, or its weights cannot be had offline."""


class IndexNotBuilt(SearchEngineError):
    """The index does not exist yet, or holds no searchable image."""


class IndexMismatch(SearchEngineError):
    """The index was built with another encoder than the one asked for."""


class UnsupportedImage(SearchEngineError):
    """A file cannot be read as an image; the message is the reason recorded for it."""


class SchemaTooNew(SearchEngineError):
    """The index database was written by a newer version of this program."""
