#!/usr/bin/env bash
# The prepared GPU check (issue 9, item 9): on a CUDA machine, in under 8 minutes,
#   1. the tests marked `device`, on cuda           (MCEF_TEST_DEVICE=cuda pytest -m device)
#   2. `mcef bench` of configs/paper.yaml in float32 and in bfloat16, each beside the reference emulation
#   3. 150 epochs of configs/paper.yaml on the IEMOCAP-shaped synthetic data: wall time and peak GPU memory
#   4. one JSON of every figure: ${OUT:-gpu_check_out}/gpu_check.json (and the steps' output in gpu_check.log)
# `--dry` runs the same steps on the CPU at tiny sizes (under 3 minutes on 2 cores), as CI does.
# Every step runs (each under its own time limit) even if one before it failed; the exit status is non-zero if
# any step failed or a figure is missing. Runs are written to a temporary folder, never to the repository's runs/.
# Python: $PYTHON, else .venv/bin/python, else python3 (the checkout is put on PYTHONPATH, no install needed).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

MODE=gpu
case "${1:-}" in
  "") ;;
  --dry) MODE=dry ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--dry]" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY="$REPO/.venv/bin/python"
else PY="$(command -v python3)" || { echo "gpu_check: no python3 (set PYTHON)" >&2; exit 1; }
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The documented CLI: the installed `mcef` beside that Python, else the same entry point through the checkout.
if [ -f "$(dirname "$PY")/mcef" ] && [ -x "$(dirname "$PY")/mcef" ]; then MCEF=("$(dirname "$PY")/mcef")
else MCEF=("$PY" -c 'import sys; from mcef.cli import main; sys.exit(main(sys.argv[1:]))')
fi

OUT_DIR="${OUT:-gpu_check_out}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LOG="$OUT_DIR/gpu_check.log"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"
rm -f "$OUT_DIR/gpu_check.json"  # never leave an earlier run's figures beside this run's log

# Sizes and time limits (seconds) of each mode. Paper model (H=512) and data on the GPU; H=32 and tiny data on CPU.
if [ "$MODE" = gpu ]; then
  DEVICE=cuda
  TEST_MARK="device"
  BENCH=("${MCEF[@]}" bench)
  BENCH_ARGS=(--epochs 5 --warmup 2)
  FIT_ARGS=(--set data.path=synthetic --set train.epochs=150 --set train.early_stopping=0)
  LIMITS=(tests=100 bench_float32=75 bench_bfloat16=75 fit=200)
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: CUDA is not available to $PY; run \`$0 --dry\` on a machine without a GPU" | tee -a "$LOG" >&2
    exit 1
  fi
else
  DEVICE=cpu
  TEST_MARK="device and not slow"
  SMALL=(--set model.hidden=32 --set model.n_heads=4 --set model.n_self_heads=2)
  BENCH=("${MCEF[@]}" bench)
  BENCH_ARGS=(--epochs 1 --warmup 0 --dialogues 8 --dims 16 12 8 "${SMALL[@]}")
  FIT_ARGS=(--set data.path=synthetic --set train.epochs=2 --set train.early_stopping=0 "${SMALL[@]}"
            --set 'data.synthetic={n_train: 12, n_test: 4, dims: [16, 12, 8], min_length: 4, max_length: 20}')
  LIMITS=(tests=150 bench_float32=120 bench_bfloat16=120 fit=90)  # generous: a shared 2-core CI machine is slow
fi
# GPU_CHECK_LIMITS="fit=300 tests=120" overrides limits (seconds) of single steps.
read -r -a EXTRA_LIMITS <<<"${GPU_CHECK_LIMITS:-}"
LIMITS+=("${EXTRA_LIMITS[@]}")

limit_of() {  # the last limit given for step $1
  local entry limit=600
  for entry in "${LIMITS[@]}"; do
    if [ "${entry%%=*}" = "$1" ]; then limit="${entry#*=}"; fi
  done
  echo "$limit"
}

# step NAME CMD...: run CMD under NAME's time limit, its output into the log; record NAME, status, seconds.
step() {
  local name="$1" limit rc start end command
  shift
  limit="$(limit_of "$name")"
  command="$(printf '%q ' "$@")"
  echo "== $name (limit ${limit} s): $command" | tee -a "$LOG"
  start="$(date +%s.%N)"
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc="${PIPESTATUS[0]}"
  set -e
  end="$(date +%s.%N)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(echo "$end $start" | awk '{print $1 - $2}')" "$limit" \
    "${command% }" >>"$WORK/steps.tsv"
  echo "== $name: exit $rc" | tee -a "$LOG"
}

echo "gpu_check ($MODE) on $DEVICE with $PY; figures to $OUT_DIR/gpu_check.json" | tee -a "$LOG"

# 1. The tests that take a device (the files that carry the marker: other test files need packages a bare GPU
#    machine may lack).
mapfile -t TEST_FILES < <(grep -l 'pytest.mark.device' tests/test_*.py)
step tests env MCEF_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider -m "$TEST_MARK" \
  --junitxml="$WORK/tests.xml" "${TEST_FILES[@]}"

# 2. The benchmark, ours beside the reference emulation, in each precision.
for precision in float32 bfloat16; do
  step "bench_$precision" "${BENCH[@]}" --config configs/paper.yaml --device "$DEVICE" --baseline reference \
    --set "model.precision=$precision" "${BENCH_ARGS[@]}" --json "$WORK/bench_$precision.json"
done

# 3. The paper configuration's full run (every epoch: early stopping off), measured in-process.
step fit "$PY" scripts/gpu_check.py fit --config configs/paper.yaml --device "$DEVICE" "${FIT_ARGS[@]}" \
  --run-dir "$WORK/runs/fit" --json "$WORK/fit.json"

# 4. One JSON of every figure; non-zero when a step failed or a figure is missing.
rc=0
"$PY" scripts/gpu_check.py report --mode "$MODE" --device "$DEVICE" --work "$WORK" \
  --json "$OUT_DIR/gpu_check.json" 2>&1 | tee -a "$LOG" || rc=$?
exit "$rc"
