"""Stage input processors that stage configs can name as ``custom_process_input_func``.

Each module wraps vLLM-Omni's own processor for one model and changes only what a given
Dynamo / vLLM-Omni release pair gets wrong; its docstring lists every such change.
Importing a module here imports no host code: the upstream processor is imported on the
first call.
"""
