"""The library's version, in a module of its own: modules that record it (checkpoints, exports)
import it from here, not from the package, whose ``__init__`` imports them."""

__version__ = "0.1.0"
