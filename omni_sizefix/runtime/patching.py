"""What every patch shares: the sentinel on its wrappers, how a signature is written in
messages, one WARNING per kind of failure (the never-crash fallback of every wrapper), and
replacing one host attribute.

``Replacement`` replaces one attribute of a host module or class by a wrapper: idempotent
(applying again changes nothing), the target checked first (a problem raises LookupError
and replaces nothing), and ``remove`` puts back the very object it replaced.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("omni_sizefix")

#: Attribute set on every wrapper; its value is the host function it wraps.
SENTINEL = "__omni_sizefix_original__"


def marked(wrapper: Callable, original: Callable) -> Callable:
    """``wrapper``, marked as the wrapper of ``original`` (``SENTINEL``)."""
    setattr(wrapper, SENTINEL, original)
    return wrapper


def signature_text(parameters: Iterable[str], is_async: bool) -> str:
    """``async (a, b)`` / ``sync (a, b)``: a signature as messages write it."""
    return f"{'async' if is_async else 'sync'} ({', '.join(parameters)})"


def describe(function: Any) -> str:
    """``function``'s signature as messages write it, or what the attribute really is."""
    if function is None:
        return "nothing (attribute missing)"
    if not callable(function):
        return f"a non-callable {type(function).__name__}"
    try:
        names = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return f"a callable without a signature ({type(function).__name__})"
    return signature_text(names, inspect.iscoroutinefunction(function))


def warn_once(warned: set[str], key: str, message: str, *args: Any) -> None:
    """Log one WARNING per ``key`` in ``warned``; later occurrences go to DEBUG."""
    if key in warned:
        logger.debug(message, *args)
        return
    warned.add(key)
    logger.warning(message, *args)


def warn_failed(warned: set[str], key: str, exc: Exception, failed: str, instead: str = "") -> None:
    """A wrapper's never-crash fallback, logged once per ``key``: what ``failed``, the
    exception, and what happens ``instead``: ``omni-sizefix: <failed> (<Type>: <exc>); <instead>``.
    """
    suffix = f"; {instead}" if instead else ""
    warn_once(warned, key, "omni-sizefix: %s (%s: %s)%s", failed, type(exc).__name__, exc, suffix)


class Replacement:
    """One attribute (``name``) of a host module or class, replaced by a wrapper."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        #: The target as messages name it, e.g. ``dynamo.vllm.omni.stage_worker._load_processor``.
        self.where = where
        #: The host's own object while it is replaced.
        self.original: Callable | None = None
        self._lock = threading.RLock()

    def _current(self, owner: Any) -> Any:
        return vars(owner).get(self.name) if owner is not None else None

    def apply(
        self, owner: Any, wrap: Callable[[Callable], Callable], problem: Callable[[], str | None]
    ) -> bool:
        """Replace the attribute of ``owner`` by ``wrap(original)``; True when newly replaced.

        Raises LookupError (nothing replaced) when another wrapper is there already or
        ``problem()`` names one.
        """
        with self._lock:
            current = self._current(owner)
            if self.original is not None and getattr(current, SENTINEL, None) is self.original:
                return False
            if hasattr(current, SENTINEL):
                raise LookupError(f"{self.where} is already wrapped elsewhere")
            found = problem()
            if found:
                raise LookupError(found)
            self.original = current
            setattr(owner, self.name, wrap(current))
            return True

    def remove(self, owner: Any) -> bool:
        """Put the host's own object back on ``owner``; True when something was replaced."""
        with self._lock:
            if self.original is None:
                return False
            if getattr(self._current(owner), SENTINEL, None) is self.original:
                setattr(owner, self.name, self.original)
            self.original = None
            return True
