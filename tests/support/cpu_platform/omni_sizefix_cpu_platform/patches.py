"""Runtime patches the CPU platform applies inside vLLM-Omni (test support only)."""

from __future__ import annotations

from omni_sizefix_cpu_platform import releases

_PATCHED = "_omni_sizefix_cpu_forward"


def route_diffusion_attention_to_sdpa() -> None:
    """Diffusion attention's ``forward`` dispatches to cuda/hip/npu/xpu/musa only and raises
    ``NotImplementedError`` on any other platform; on this one, take the CUDA path, which for
    the SDPA backend is plain ``torch.nn.functional.scaled_dot_product_attention``."""
    impl = releases.resolve(releases.DIFFUSION_ATTENTION_IMPL)
    if getattr(impl.forward, _PATCHED, False):
        return
    original = impl.forward

    def forward(self, query, key, value, attn_metadata=None):
        from vllm_omni.platforms import current_omni_platform

        if getattr(current_omni_platform, "is_omni_sizefix_cpu", False):
            return self.forward_cuda(query, key, value, attn_metadata)
        return original(self, query, key, value, attn_metadata)

    setattr(forward, _PATCHED, True)
    impl.forward = forward
