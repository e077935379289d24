"""The live Dynamo topology with FAKE stage engines (demo and test support, no GPU needed).

``topology`` starts the four real Dynamo processes (HTTP frontend, omni router, stage-0
and stage-1 workers); ``fake_worker`` is the launcher the stage workers run under, which
replaces only the GPU engines with the fakes in ``fake_engines``; ``client`` adds the fake
DiT's picture check to ``omni_sizefix.tools.smoke``; ``served`` says which sizes the release's
frontend and the stage-0 budget allow; ``live_check`` is ``omni-sizefix check --live``.
Nothing here is imported by the plugin itself.
"""
