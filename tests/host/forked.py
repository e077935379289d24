"""Fork harness shared by the host tests that run themselves as a script in a fresh process.

Such a test file imports the heavy host stack once, then runs each scenario in a forked
child (``in_fork``), so every child starts from the same clean state. This module imports
nothing of the plugin: the harness asserts it is not loaded before the fork.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def in_fork(child: Callable[[], dict]) -> dict:
    """``child()`` in a forked process; its JSON-able result, or ``harness_error``."""
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
    with os.fdopen(read_fd) as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    return json.loads(data) if data else {"harness_error": f"child died with status {status}"}


def script_code(test_file: str) -> str:
    """Python code that runs ``test_file`` as ``__main__`` with this folder importable."""
    return (
        f"import runpy, sys; sys.path.insert(0, {str(HERE)!r}); "
        f"runpy.run_path({str(Path(test_file).resolve())!r}, run_name='__main__')"
    )
