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


class ImageTooLarge(UnsupportedImage):
    """An image has more pixels than allowed (a possible decompression bomb)."""


class BadQuery(SearchEngineError):
    """A search request that cannot be answered as asked (empty, bad paging, unknown mode...)."""


class NotFound(SearchEngineError):
    """A request names something that does not exist (any more): an image id, a collection."""


class SystemicFailure(SearchEngineError):
    """A failure of the machine or a backend, not of one input: an index run stops on it."""


class SchemaTooNew(SearchEngineError):
    """The index database was written by a newer version of this program."""
