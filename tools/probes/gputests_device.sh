#!/usr/bin/env bash
# One call on the GPU machine (H200), from the repository root: the GPU test files on the real
# device (NUMBA_ENABLE_CUDASIM=0), their test ids dealt round-robin to 8 pytest processes, since
# each test compiles its own kernels (20-70 s each on a cold cache, CPU-bound).  Limits keep the
# call under 10 minutes; a shard cut off by its limit reports what it passed so far in its log.
# IDS=<file of test ids> runs only those (e.g. what an earlier call did not reach); SHARDS=n sets the process count.
name=gputests
source "$(dirname "$0")/_device_common.sh"
files="tests/test_cuda.py tests/test_cuda_launch.py tests/test_torch_gpu_path.py tests/test_gpu_tools.py tests/test_repro_gpu.py"
if [ -n "${IDS:-}" ]; then cp "$IDS" "$out/ids.txt"    # IDS=file: only these test ids (one per line)
else python3 -m pytest -n 0 --collect-only -q $files 2>/dev/null | grep '::' > "$out/ids.txt"; fi
echo "$(wc -l < "$out/ids.txt") tests collected" | tee -a "$out/steps.txt"
shards=${SHARDS:-8}
for k in $(seq 0 $((shards - 1))); do
  awk -v k=$k -v n=$shards 'NR % n == k' "$out/ids.txt" > "$out/ids$k.txt"
  mapfile -t ids < "$out/ids$k.txt"      # ids hold spaces ("mode read per element")
  NUMBA_NUM_THREADS=2 step shard$k 540 python3 -m pytest -n 0 -p no:cacheprovider -rfE -v "${ids[@]}" &
done
wait
grep -h -E ' (PASSED|FAILED|ERROR|SKIPPED)' "$out"/shard*.log | sed -E 's/.* (PASSED|FAILED|ERROR|SKIPPED).*/\1/' | sort | uniq -c | tee -a "$out/steps.txt"
pack 15
