"""Exceptions the plugin lets reach the host.

``SizeRejected`` is a ``ValueError`` everywhere. Inside a Dynamo process (one that has
already loaded Dynamo's runtime, ``dynamo._core``) it is also an instance of Dynamo's
``dynamo.llm.exceptions.InvalidArgument``, which ai-dynamo 1.6 answers with HTTP 400 and
the message (a plain ``ValueError``: 400 "Invalid request"; up to 1.4 every worker error
is a 500). Nothing here imports Dynamo unless Dynamo's runtime is loaded already: not at
plugin registration, not in ``omni-sizefix`` commands, not in tests without a host.
"""

from __future__ import annotations

import importlib
import sys

#: The Dynamo module of the class a rejection also derives from, where the release has it.
from omni_sizefix.runtime.host_modules import EXCEPTIONS_MODULE as DYNAMO_EXCEPTIONS
from omni_sizefix.runtime.host_modules import RUNTIME_MODULE as DYNAMO_RUNTIME

_host_class: type | None = None


class SizeRejected(ValueError):
    """A requested size the size policy refuses; the only error the plugin raises on purpose.

    Constructed in a Dynamo process, the instance is of ``host_rejection_class()``: still a
    ``SizeRejected`` and a ``ValueError`` (``except ValueError`` callers keep working), and
    also Dynamo's ``InvalidArgument`` where that is importable.
    """

    def __new__(cls, *args: object, **kwargs: object) -> SizeRejected:
        if cls is SizeRejected:
            cls = host_rejection_class()
        return super().__new__(cls, *args, **kwargs)

    def __reduce__(self) -> tuple:
        """Pickle as a rebuild in the receiving process (its own host class, if any)."""
        return (_rebuild, self.args)


def _rebuild(*args: object) -> SizeRejected:
    return SizeRejected(*args)


def dynamo_invalid_argument() -> type[BaseException] | None:
    """Dynamo's ``InvalidArgument`` when Dynamo's runtime is loaded in this process, else None."""
    module = sys.modules.get(DYNAMO_EXCEPTIONS)
    if module is None:
        if DYNAMO_RUNTIME not in sys.modules:
            return None
        try:
            module = importlib.import_module(DYNAMO_EXCEPTIONS)
        except Exception:  # an older or changed release: a plain ValueError then
            return None
    found = getattr(module, "InvalidArgument", None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


def host_rejection_class() -> type[SizeRejected]:
    """``SizeRejected``, or a subclass that is also Dynamo's ``InvalidArgument`` (cached)."""
    global _host_class
    if _host_class is not None:
        return _host_class
    invalid = dynamo_invalid_argument()
    if invalid is None:
        return SizeRejected  # not cached: Dynamo may be loaded later in this process
    both: type[SizeRejected] = SizeRejected
    try:
        candidate = type(
            "SizeRejected",
            (SizeRejected, invalid),
            {"__module__": __name__, "__doc__": SizeRejected.__doc__},
        )
        probe = candidate("probe")
        if isinstance(probe, invalid) and str(probe) == "probe":
            both = candidate
    except Exception:  # classes that cannot be combined: stay a plain ValueError
        pass
    _host_class = both
    return both
