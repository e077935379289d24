"""The probed host profile, as operator tooling needs it.

``omni_sizefix.tools.host_profile.probed()`` imports the host as a stage worker does. On a
machine without an accelerator vLLM-Omni's platform raises while ``dynamo.vllm.omni``
imports; this module installs the zero-device stand-in (``simulation.check_platform``, in
this process only) before probing. Workers never need it: they run on their accelerator.
"""

from __future__ import annotations

from omni_sizefix.tools import host_profile


def probed() -> host_profile.HostProfile:
    """The full profile of this process's host (imports it; computed once)."""
    from omni_sizefix.tools.simulation import check_platform

    try:
        check_platform.activate_if_needed()
    except Exception:  # no vLLM-Omni: the probe says what is missing
        pass
    return host_profile.probed()
