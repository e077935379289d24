"""Stable path of the GLM-Image stage-1 processor that stage configs name.

``custom_process_input_func: omni_sizefix.processors.glm_image.ar2diffusion`` (the shipped
legacy config, and configs copied from it since 0.1.0). The processor and its fixes live in
``omni_sizefix.runtime.patches.stage1``.
"""

from omni_sizefix.runtime.patches.stage1 import ar2diffusion

__all__ = ["ar2diffusion"]
