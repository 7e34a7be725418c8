#!/usr/bin/env bash
# The GPU checks in one go, on a machine with CUDA and the project installed
# (`pip install -e .`):
#   1. bench/step_time.py (one step per precision/layout/compile), then
#      bench/train_speed.py on the real archive: the textbook loop vs convlab, bf16 and fp32,
#      torch.compile off and on (which is faster at batch 32 decides train.compile's default);
#   2. the whole study from a clean copy, all three variants, timed, and the training seconds of
#      every run from runs.csv (target: under 60 s for one seed's 80 epochs). SEEDS runs per
#      variant (default 1, the quick path; 5 is the committed study, about 5x as long).
# Usage: bench/gpu.sh /path/to/cifar-10-python.tar.gz [EPOCHS] [SEEDS]
set -euo pipefail
archive=$(realpath "${1:?usage: bench/gpu.sh ARCHIVE [EPOCHS]}")
epochs=${2:-3}
seeds=${3:-1}
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PY
python bench/step_time.py
python bench/train_speed.py --archive "$archive" --epochs "$epochs"
for precision in bf16 fp32; do
  for compile in off on; do
    echo "== convlab precision=$precision compile=$compile"
    python bench/train_speed.py --archive "$archive" --epochs "$epochs" \
      --precision "$precision" --compile "$compile" | tail -4
  done
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/convlab"
cd "$work/convlab"
start=$(date +%s)
CIFAR10_URL="file://$archive" PYTHONPATH=src dvc exp run -S "train.seeds=$seeds"
echo "dvc repro wall seconds: $(( $(date +%s) - start ))"
python - <<'PY'
import csv, json
total = 0.0
for v in ("baseline", "dropout", "staged_dropout"):
    m = json.load(open(f"metrics/train_{v}.json"))
    runs = list(csv.DictReader(open(f"plots/train_{v}/runs.csv")))
    seconds = sum(float(r["train_seconds"]) for r in runs)
    total += seconds
    first = runs[0]
    print(f"{v}: {len(runs)} seed(s), {seconds:.1f} s training, {first['images_per_second']} images/s, "
          f"best val {m['best_val_acc']:.4f}, {first['runtime']} ({first['hardware']})")
print(f"all variants: {total:.1f} s of training")
print(json.dumps(json.load(open("metrics/test.json")), indent=1))
PY
