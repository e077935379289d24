"""Where a command's output goes: its result on stdout, everything else away from it.

Host libraries write to stdout while they import and run: vLLM's logger prints INFO and
WARNING lines there, C extensions print from C. While a command runs, file descriptor 1
and ``sys.stdout`` point at stderr (or, for ``check``, at a log file, together with
stderr); the command hands its result to :class:`Output`, which prints it on the real
stdout once the host is done. So ``--json`` output is exactly one JSON document, and
``$(omni-sizefix stage-config)`` is exactly one path, whatever the host logs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Output:
    """What a command says: ``emit`` the result (stdout, printed last), ``error`` (stderr)."""

    log_path: Path | None = None
    results: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: ``-q``: ``note`` and ``debug`` print nothing (errors still do).
    quiet: bool = False
    _stderr: TextIO | None = None

    def emit(self, text: str) -> None:
        """The command's result; printed on the real stdout after the command ends."""
        self.results.append(text)

    def error(self, text: str) -> None:
        """A message of our own for the person at the terminal (the real stderr, at once)."""
        self.errors.append(text)
        self._print(text)

    def note(self, text: str) -> None:
        """Progress for the person at the terminal (the real stderr), unless ``quiet``."""
        if not self.quiet:
            self._print(text)

    def debug(self, text: str) -> None:
        """Detail such as a traceback (the real stderr), unless ``quiet``."""
        if not self.quiet:
            self._print(text.rstrip("\n"))

    def _print(self, text: str) -> None:
        stream = self._stderr or sys.__stderr__ or sys.stderr
        print(text, file=stream, flush=True)


def _flush_c_stdio() -> None:
    """Flush C-level stdio buffers (extensions' ``printf``) before a descriptor moves."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _flush(*streams: TextIO | None) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    _flush_c_stdio()


def _fd_usable(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _writes_to(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def diverted(log_path: Path | None = None, quiet: bool = False) -> Iterator[Output]:
    """Run the body with stdout diverted to stderr, or stdout and stderr to ``log_path``
    (``os.devnull`` for ``-q``); ``quiet`` is the :class:`Output`'s.

    Both the descriptors (for C code, and handlers bound to the original streams) and
    ``sys.stdout`` (for handlers created and ``print`` calls made while diverted) are
    moved; everything is restored on the way out, then the emitted result is printed.
    """
    real_out, real_err = sys.stdout, sys.stderr
    _flush(real_out, real_err)
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    moved: list[tuple[int, int]] = []  # (descriptor, saved copy of it)
    err_copy: TextIO | None = None
    try:
        target = log.fileno() if log else 2
        for fd in (1, 2) if log else (1,):
            if _fd_usable(fd) and _fd_usable(target):
                moved.append((fd, os.dup(fd)))
                os.dup2(target, fd)
        saved_err = dict(moved).get(2)
        if saved_err is not None and _writes_to(real_err, 2):
            err_copy = open(os.dup(saved_err), "w", encoding="utf-8", buffering=1)
        shown = None if log_path is not None and str(log_path) == os.devnull else log_path
        out = Output(log_path=shown, quiet=quiet, _stderr=err_copy or real_err)
        sys.stdout = real_err  # handlers made now bind to stderr, never to stdout
        try:
            yield out
        finally:
            _flush(sys.stdout, sys.stderr, real_out, real_err)
            sys.stdout = real_out
            while moved:
                fd, saved = moved.pop()
                os.dup2(saved, fd)
                os.close(saved)
    finally:
        for _fd, saved in moved:  # only when diverting failed half-way
            with contextlib.suppress(OSError):
                os.close(saved)
        if err_copy is not None:
            err_copy.close()
        if log is not None:
            log.close()
    for text in out.results:
        print(text, file=real_out)
    real_out.flush()


def seal_stdout() -> None:
    """After the result is out: send anything written to stdout later (exit hooks, host
    threads) to stderr, so the document stays the only thing on stdout."""
    _flush(sys.stdout, sys.stderr)
    if _fd_usable(1) and _fd_usable(2):
        os.dup2(2, 1)
    sys.stdout = sys.stderr
