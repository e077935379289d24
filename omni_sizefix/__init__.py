"""omni-sizefix: the requested image/video size, end to end, in Dynamo's disaggregated
vLLM-Omni path.

Public API: ``register`` (the plugin entry point), ``patch``, ``unpatch``, ``is_patched``;
hook authors import ``hookimpl`` from ``omni_sizefix.hookspecs``.
"""

from omni_sizefix.runtime.activation import is_patched, patch, register, unpatch
from omni_sizefix.runtime.settings import __version__

__all__ = ["__version__", "is_patched", "patch", "register", "unpatch"]
