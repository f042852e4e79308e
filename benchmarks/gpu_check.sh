#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): usage  bash benchmarks/gpu_check.sh OUT_DIR [--device cpu] [--budget SECONDS]
#
# Installs this package (pip install --no-deps --no-build-isolation -e ., nothing downloaded), then runs the
# sections of benchmarks/gpu_check.py under one global deadline (default 450 s from the start of this script, so
# the whole run stays under 8 minutes); a part that no longer fits is skipped with a line saying so. Writes
# OUT_DIR/results.json, OUT_DIR/results.md (paste into benchmarks/RESULTS.md) and one JSON and log per section.
# Exit status: 0 all sections ran, 1 a section failed, 2 a section was skipped for time.
# PYTHON=/path/to/python overrides the interpreter (default: the first of python, python3, .venv/bin/python
# that imports torch).
set -euo pipefail

started=$(date +%s)
usage="usage: $0 OUT_DIR [--device cpu|cuda] [--budget SECONDS]"
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 64; }
out_dir=$1
shift
device=cuda
budget=450
while [[ $# -gt 0 ]]; do
    case $1 in
        --device) device=${2:?--device needs cpu or cuda}; shift 2 ;;
        --budget) budget=${2:?--budget needs seconds}; shift 2 ;;
        *) echo "$usage" >&2; exit 64 ;;
    esac
done
[[ $device == cpu || $device == cuda ]] || { echo "--device must be cpu or cuda" >&2; exit 64; }

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

python_bin=${PYTHON:-}
if [[ -z $python_bin ]]; then
    for candidate in python python3 "$repo_root/.venv/bin/python"; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
            python_bin=$candidate
            break
        fi
    done
fi
[[ -n $python_bin ]] || { echo "no Python with torch found (set PYTHON=...)" >&2; exit 1; }
echo "gpu_check: repo $repo_root, device $device, budget ${budget} s, python $(command -v "$python_bin")"

part_started=$(date +%s)
# Already installed from this very checkout (an editable install here)? Then leave it: reinstalling would remove it
# for a moment under anything else using this environment.
installed_from=$(cd / && "$python_bin" -c "import lightning_stability, os; print(os.path.dirname(os.path.dirname(os.path.realpath(lightning_stability.__file__))))" 2>/dev/null || true)
if [[ $installed_from == "$repo_root" ]]; then
    echo "install: lightning_stability is already installed from $repo_root; pip install skipped"
elif "$python_bin" -m pip install --no-deps --no-build-isolation -e . ; then
    echo "install: pip install --no-deps --no-build-isolation -e . done"
else
    echo "install: pip install FAILED; falling back to PYTHONPATH=$repo_root"
    export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "--- install: $(( $(date +%s) - part_started )) s elapsed in this part"

"$python_bin" -c "import torch, lightning_stability; print('torch', torch.__version__, 'cuda available', torch.cuda.is_available())"

status=0
"$python_bin" benchmarks/gpu_check.py "$out_dir" --device "$device" --deadline $(( started + budget )) || status=$?
echo "gpu_check: finished in $(( $(date +%s) - started )) s in all, exit status $status"
exit "$status"
