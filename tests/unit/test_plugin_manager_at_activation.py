"""The hook plugin manager (entry-point scan) is built at activation, not by a request."""

from __future__ import annotations

import omni_sizefix
from omni_sizefix.runtime import hooks


def test_plugin_manager_exists_after_activation_before_any_request(fake_dynamo) -> None:
    hooks.reset_plugin_manager()
    omni_sizefix.register()
    import dynamo.vllm.omni.utils  # noqa: F401  (activation: the patch is applied on import)

    assert omni_sizefix.is_patched()
    assert hooks._pm is not None
