"""Operator tooling: the ``omni-sizefix`` command and what it drives.

``cli`` (entry point), ``doctor`` and ``config_check`` (will it work here?), ``check`` with
``simulation/`` (the request path offline, GPU parts faked), ``smoke`` (a running
deployment over HTTP), ``live/`` (the real Dynamo processes with FAKE engines) and
``stage_configs`` (the shipped stage configs). Nothing here runs inside a serving worker.
"""
