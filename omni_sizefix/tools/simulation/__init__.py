"""The offline simulation ``omni-sizefix check`` runs: the real host request path on CPU.

``dryrun`` drives a request through the real Dynamo stage workers with FAKE engines,
``stage0`` runs stage 0's real preprocessing, ``model_folder`` builds GLM-Image model
folders (weightless or with tiny random weights) and ``check_platform`` stands in for
vLLM-Omni's GPU platform.
"""
