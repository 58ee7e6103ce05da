#!/usr/bin/env bash
# The hardware harness: a Verilog (Icarus) and a C model of a float32 -> E4M3FN converter checked
# against fp8emu's vectors, plus copies of both with planted bugs that must be caught.
#
# Required (exit status 1 otherwise):
#   * the correct models PASS `fp8emu check` at levels 1 and 2, saturating and not;
#   * the copy with ties away from zero in [1, 2) FAILs with only `rounding` mismatches;
#   * the copy that flushes subnormal results FAILs with only `subnormal` mismatches.
# Needs iverilog/vvp and a C compiler ($CC, default cc); .ci/run installs them when missing.
# Usage: bash examples/hardware/run.sh [BUILD_DIR]   (default: a temporary directory; LEVELS="1" for level 1 only)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's fp8emu
build="${1:-$(mktemp -d)}"
mkdir -p "$build"
CC="${CC:-cc}"
fp8emu() { python -m fp8emu "$@"; }

declare -A plant=([correct]="" [ties_away]="-DPLANT_TIES_AWAY" [ftz]="-DPLANT_FTZ")
declare -A want=([correct]="PASS" [ties_away]="FAIL rounding" [ftz]="FAIL subnormal")
for variant in correct ties_away ftz; do
  iverilog -g2005 -Wall -o "$build/tb_$variant" ${plant[$variant]} \
    "$here/tb_f32_to_e4m3fn.v" "$here/f32_to_e4m3fn.v"
  "$CC" -std=c99 -O2 -Wall -Wextra -Werror ${plant[$variant]} -o "$build/driver_$variant" \
    "$here/driver.c" "$here/f32_to_e4m3fn.c"
done

status=0
printf '%-6s %-9s %-5s %-8s %-7s %s\n' model variant level saturate cases verdict
for level in ${LEVELS:-1 2}; do
  for sat in 0 1; do
    v="$build/v_l${level}_s${sat}.txt"
    fp8emu vectors --source float32 --format e4m3fn --level "$level" $([ "$sat" = 1 ] && echo --saturate) \
      --out "$v" 2>/dev/null
    cases=$(grep -vc '^//' "$v")
    for variant in correct ties_away ftz; do
      for model in verilog c; do
        r="$build/r_${model}_${variant}_l${level}_s${sat}.txt"
        if [ "$model" = verilog ]; then
          vvp -n "$build/tb_$variant" +vectors="$v" +results="$r" +cases="$cases" \
            $([ "$sat" = 1 ] && echo +saturate) >/dev/null
        else
          "$build/driver_$variant" "$v" "$r" 2>/dev/null
        fi
        rc=0; fp8emu check --vectors "$v" --results "$r" 2>"$r.report" || rc=$?
        classes=$( (grep -E '^  [a-z_]+ +[0-9]+$' "$r.report" || true) | awk '{print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
        case $rc in 0) got="PASS" ;; 1) got="FAIL $classes" ;; *) got="ERROR (exit $rc)" ;; esac
        verdict="$got  ($(head -1 "$r.report" | sed 's/^[A-Z]*: //'))"
        if [ "$got" != "${want[$variant]}" ]; then verdict="$verdict  <-- expected ${want[$variant]}"; status=1; fi
        printf '%-6s %-9s %-5s %-8s %-7s %s\n' "$model" "$variant" "$level" "$sat" "$cases" "$verdict"
        [ "$got" = "${want[$variant]}" ] || sed 's/^/    /' "$r.report" | head -20
      done
    done
  done
done
[ "$status" = 0 ] && echo "hardware harness: every model and planted bug behaved as required" \
  || echo "hardware harness: FAILED (see above)" >&2
exit "$status"
