#!/usr/bin/env bash
# Runs the nested lab: QEMU (TCG, an emulated AMD CPU with SVM) boots the Debian cloud kernel
# as L1 with .cache/lab/l1-initrd.img; its /init (Tests/Lab/l1-init) loads KVM with nested SVM
# and runs the scenarios, hv boots L2 guests inside it. Prints each scenario's PASS/FAIL line,
# then "N passed, N failed"; failure details and timings go to stderr. Exits non-zero when a
# scenario failed or had no result (time limit, L1 crash).
#   Tests/Lab/run.sh [scenario ...]     (default: all; names are in l1-init, scenario_*; a name
#                                       with * ? or [ is a pattern over the known names:
#                                       Tests/Lab/run.sh 'vmbus-*' runs only the VMBus ones,
#                                       'netvsc-*' 'e1000-*' the NIC ones)
#   LAB_TIMEOUT=seconds                 (whole-run limit, default 300, plus each selected NIC
#                                       boot's own watchdog: 480 s for netvsc and e1000, 300 s for
#                                       netvsc-capture)
#   LAB_VERBOSE=1                       (a failed scenario shows all of hv's output, not the tail;
#                                       the NIC boots' whole L2 console and hv stderr go to the log)
#   LAB_L1_CPUS=n                       (L1's vCPUs, default 4)
# The whole serial log is kept in .cache/lab/last-run.log.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache/lab"
log="$cache/last-run.log"
limit="${LAB_TIMEOUT:-300}"
qemu="${QEMU:-/usr/bin/qemu-system-x86_64}"

all=(hv-hello-l1 hv-caps-l1
     linux-boot-1cpu linux-initrd-cmdline linux-reboot
     linux-boot-4cpu linux-cpuinfo-4cpus linux-date linux-console-stdin linux-console-line-editing linux-poweroff
     linux-pvh-vmlinux
     vmbus-attach vmbus-heartbeat vmbus-stop vmbus-time
     netvsc-link netvsc-ping netvsc-transfer netvsc-capture
     e1000-link e1000-ping e1000-transfer)
if [ $# -gt 0 ]; then
    scenarios=()
    for arg in "$@"; do
        case "$arg" in
            *[*?[]*)
                matched=0
                for name in "${all[@]}"; do
                    if [[ $name == $arg ]]; then scenarios+=("$name"); matched=1; fi
                done
                if [ "$matched" = 0 ]; then
                    echo "lab: no scenario matches '$arg' (known: ${all[*]})" >&2
                    exit 1
                fi ;;
            *) scenarios+=("$arg") ;;
        esac
    done
else
    scenarios=("${all[@]}")
fi

# The NIC boots (l1-init, boot_net) may take up to their watchdog each: nested TCG networking is slow.
if [ -z "${LAB_TIMEOUT:-}" ]; then
    netvsc_boot=0 e1000_boot=0 capture_boot=0
    for name in "${scenarios[@]}"; do
        case "$name" in
            netvsc-capture) capture_boot=300 ;;
            netvsc-*) netvsc_boot=480 ;;
            e1000-*) e1000_boot=480 ;;
        esac
    done
    limit=$((300 + netvsc_boot + e1000_boot + capture_boot))
fi

for f in "$cache/vmlinuz" "$cache/l1-initrd.img" "$qemu"; do
    [ -e "$f" ] || { echo "lab: missing $f (run Tests/Lab/fetch.sh and Tests/Lab/build-initramfs.sh, or make lab)" >&2; exit 1; }
done

list=$(IFS=,; echo "${scenarios[*]}")
start=$(date +%s.%N)
set +e
# panic=-1 with -no-reboot: an L1 panic ends QEMU at once instead of waiting for the limit.
# L1 gets as many vCPUs as the largest L2 guest (4): with 2, a 4-vCPU L2 stalled for minutes and
# then triple-faulted in about 1 run of 3 (overcommitted nested vCPUs under TCG); with 4, 8 of 8 passed.
timeout -k 10 "$limit" "$qemu" -accel tcg -cpu EPYC,+svm -m 2G -smp "${LAB_L1_CPUS:-4}" \
    -nographic -no-reboot -nic none \
    -kernel "$cache/vmlinuz" -initrd "$cache/l1-initrd.img" \
    -append "console=ttyS0 panic=-1 lab.scenarios=$list lab.verbose=${LAB_VERBOSE:-0}" \
    </dev/null 2>&1 | tr -d '\r' > "$log"
qemu_status=${PIPESTATUS[0]}
set -e
total=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || awk "BEGIN { print $(date +%s.%N) - $start }")

passed=0 failed=0
incomplete=0
for name in "${scenarios[@]}"; do
    line=$(grep -E "^(PASS $name\$|FAIL $name: )" "$log" | tail -n 1 || true)
    if [ -z "$line" ]; then
        incomplete=1
        if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
            line="FAIL $name: no result (the lab hit its ${limit}s limit)"
        else
            line="FAIL $name: no result (L1 ended early, QEMU status $qemu_status)"
        fi
    fi
    # A boot the lab retried because L2 froze inside nested KVM (l1-init, retry_frozen) says so.
    if grep -q "^LAB retry $name: " "$log"; then
        line="$line (after a retry: $(sed -n "/^LAB retry $name: /{s/^LAB retry [^:]*: //; s/; retrying.*//; p; q}" "$log"))"
        grep -F "| $name " "$log" | grep -E "L2 froze|first try" >&2 || true
    fi
    echo "$line"
    case "$line" in
        PASS*) passed=$((passed + 1)) ;;
        *) failed=$((failed + 1))
           grep -F "| $name " "$log" >&2 || true ;;
    esac
done
if [ "$incomplete" = 1 ]; then
    echo "--- last 60 lines of $log ---" >&2
    tail -n 60 "$log" >&2
    echo "---" >&2
fi

# Timings: L1's kernel boot (guest uptime at /init), each scenario, and the whole QEMU run.
{
    printf 'lab timings: L1 boot %s' "$(sed -n '/^LAB init at /{s/^LAB init at \([0-9.]*s\).*/\1/p; q}' "$log")"
    sed -n 's/^LAB time \([^ ]*\) \([0-9.]*s\)$/, \1 \2/p' "$log" | tr -d '\n'
    printf ', total %.1fs\n' "$total"
} >&2

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
