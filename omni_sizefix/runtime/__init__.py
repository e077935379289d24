"""What runs inside a Dynamo worker (or vLLM-Omni's offline ``Omni``), in import order, each
module importing only those above it:

``settings`` (environment, supported hosts) -> ``sizing`` (request sizes, GLM-Image grids,
size policy) -> ``patches.stage1`` (stage-1 processors) -> ``pipelines`` (the model and
where its stage 1 reads the size) -> ``hooks`` (plugin manager, default hooks) ->
``patches.parse``, ``patches.stage_worker``, ``patches.offline`` -> ``activation`` (entry
point). The patch index, with each fix's removal condition: ``patches/__init__.py``.
"""
