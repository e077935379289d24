"""What runs inside a Dynamo worker: activation, the patches, the hooks and the policies.

Request path: ``activation`` installs ``patches/`` when Dynamo's modules are imported; the
patched parse calls ``repair.apply``, which asks the hooks (``plugins``, ``default_plugin``)
for the size and writes it where ``pipelines`` found the installed stage-1 processor reads
it. ``host_profile`` and ``version_policy`` decide whether the host is one the patches fit.
"""
