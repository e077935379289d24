"""The live Dynamo topology with FAKE stage engines (demo and test support, no GPU needed).

``topology`` starts the four real Dynamo processes (HTTP frontend, omni router, stage-0
and stage-1 workers); ``fake_worker`` is the launcher the stage workers run under, which
replaces only the GPU engines with the fakes in ``fake_engines``; ``client`` is a small
standard-library HTTP client; ``live_check`` is ``omni-sizefix check --live``.
Nothing here is imported by the plugin itself.
"""
