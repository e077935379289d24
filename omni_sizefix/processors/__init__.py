"""Processor paths that stage configs name as ``custom_process_input_func``.

These names are a public interface (deployed configs carry them); the code behind them
lives in ``omni_sizefix.runtime.patches``. Importing a module here imports no host code.
"""
