"""What runs inside a Dynamo worker: activation, the patches, the hooks and the policies.

Request path: ``activation`` installs ``patches/`` when Dynamo's modules are imported; the
patched parse calls ``repair.repair_request``, which asks the hooks (``plugins``,
``default_plugin``) for the size and writes it where ``pipelines`` found the installed stage-1
processor reads it. ``version_policy`` decides whether the host is one the patches fit; each
patch checks its target's signature itself.
"""
