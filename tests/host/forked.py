"""Fork harness shared by the host tests that run themselves as a script in a fresh process.

Such a test file imports the heavy host stack once, then runs each scenario in a forked
child (``in_fork``), so every child starts from the same clean state. This module imports
nothing of the plugin: the harness asserts it is not loaded before the fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"  # glm_rules, as pytest's pythonpath has it


#: Seconds a forked child may run before it is killed (a scenario takes a few seconds).
CHILD_TIMEOUT_S = float(os.environ.get("OMNI_SIZEFIX_FORK_TIMEOUT", "300"))


def in_fork(child: Callable[[], dict], timeout: float = CHILD_TIMEOUT_S) -> dict:
    """``child()`` in a forked process; its JSON-able result, or ``harness_error``.

    The child is killed after ``timeout`` seconds and always reaped (no zombie is left,
    whatever the parent's read raised)."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            payload = child()
        except BaseException:
            payload = {"harness_error": traceback.format_exc()}
        with os.fdopen(write_fd, "w") as out:
            json.dump(payload, out, default=repr)
        os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                timed_out = True
                break
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"harness_error": f"child killed after {timeout:.0f} s (no result)"}
    data = b"".join(chunks).decode()
    return json.loads(data) if data else {"harness_error": f"child died with status {status}"}


def script_code(test_file: str) -> str:
    """Python code that runs ``test_file`` as ``__main__`` with this folder and the tests'
    support folder importable."""
    return (
        f"import runpy, sys; sys.path[:0] = [{str(HERE)!r}, {str(SUPPORT)!r}]; "
        f"runpy.run_path({str(Path(test_file).resolve())!r}, run_name='__main__')"
    )
