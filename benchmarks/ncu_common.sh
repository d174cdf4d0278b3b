# Shared by benchmarks/ncu_fused.sh and ncu_long.sh (sourced): locate ncu and profile one
# command with the sections that explain an issue-bound kernel (speed of light, warp states,
# instruction mix, occupancy, scheduler, memory, per-instruction source counters), clocks left
# alone (--clock-control none, METHOD.md).
#
#   ncu_profile OUTBASE KERNEL_REGEX SKIP COUNT COMMAND...
#
# writes OUTBASE.txt (the sections) and OUTBASE.csv (executed instructions and stall samples per
# SASS instruction); the command's log tail is appended to OUTBASE.txt. Returns nonzero if any
# step failed.
NCU=${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)}

ncu_profile() {
  local base=$1 regex=$2 skip=$3 count=$4 rc=0
  shift 4
  if [[ -z "$NCU" ]]; then
    echo "ncu not found" >&2
    return 3
  fi
  "$NCU" --clock-control none -k "regex:$regex" --launch-skip "$skip" --launch-count "$count" \
    --section SpeedOfLight --section WarpStateStats --section InstructionStats \
    --section Occupancy --section LaunchStats --section SchedulerStats \
    --section MemoryWorkloadAnalysis --section SourceCounters \
    -f -o "$base" "$@" > "$base.log" 2>&1 || rc=1
  "$NCU" -i "$base.ncu-rep" --page details > "$base.txt" 2>&1 || rc=1
  "$NCU" -i "$base.ncu-rep" --page source --print-source sass --csv > "$base.csv" 2>&1 || rc=1
  tail -5 "$base.log" >> "$base.txt"
  rm -f "$base.ncu-rep" "$base.log"
  return $rc
}
