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
#   LAB_SILENCE=seconds                 (console silence after which L1 counts as hung, default 600:
#                                       its vCPUs' registers are shown, and the scenarios without a
#                                       result run once more in a second L1)
# The whole serial log is kept in .cache/lab/last-run.log (a second L1's appended after a line
# "LAB second L1 boot for: ...").
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$root/.cache/lab"
log="$cache/last-run.log"
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

# $@: scenarios. Prints the whole-run limit in seconds: LAB_TIMEOUT, else 300 plus the watchdog of
# each NIC boot the scenarios need (l1-init, boot_net): nested TCG networking is slow.
run_limit() {
    if [ -n "${LAB_TIMEOUT:-}" ]; then echo "$LAB_TIMEOUT"; return; fi
    local netvsc_boot=0 e1000_boot=0 capture_boot=0 name
    for name in "$@"; do
        case "$name" in
            netvsc-capture) capture_boot=300 ;;
            netvsc-*) netvsc_boot=480 ;;
            e1000-*) e1000_boot=480 ;;
        esac
    done
    echo $((300 + netvsc_boot + e1000_boot + capture_boot))
}

for f in "$cache/vmlinuz" "$cache/l1-initrd.img" "$qemu"; do
    [ -e "$f" ] || { echo "lab: missing $f (run Tests/Lab/fetch.sh and Tests/Lab/build-initramfs.sh, or make lab)" >&2; exit 1; }
done

# L1 prints something at least every few minutes while it works (a NIC boot, the longest quiet
# stretch, ends within its 480 s watchdog). This much silence means L1 itself stopped responding.
silence_limit="${LAB_SILENCE:-600}"
monitor="$cache/qemu-monitor"   # QEMU's human monitor over two FIFOs: $monitor.in, $monitor.out

# $1: QEMU's `info registers -a` output. One line per L1 vCPU: its RIP (EIP), CPL and whether it
# halted. L1 boots with nokaslr, so a kernel RIP is an address in Debian's vmlinux as built (to look
# up with the linux-image-...-dbg package's symbols; the System.map Debian ships is a placeholder).
summarize_l1_cpus() {
    awk '
        /^CPU#[0-9]+/ { cpu = substr($1, 5) }
        /^(RIP|EIP)=/ {
            cpl = ""; hlt = ""
            for (i = 2; i <= NF; i++) { if ($i ~ /^CPL=/) cpl = " " $i; if ($i ~ /^HLT=/) hlt = " " $i }
            print "L1 vCPU " cpu ": " tolower(substr($1, 1, 3)) " " tolower(substr($1, 5)) cpl hlt
        }' "$1"
}

# Asks QEMU for every L1 vCPU's registers: the whole dump to $1, the summary to stdout.
dump_l1_cpus() {
    timeout 5 sh -c "echo 'info registers -a' >'$monitor.in'" 2>/dev/null || { echo "L1 vCPUs: QEMU's monitor did not answer"; return; }
    timeout 3 cat "$monitor.out" 2>/dev/null | tr -d '\r' >"$1"
    summarize_l1_cpus "$1"
}

# $1: the serial log to write; the rest: scenarios. Boots L1 once and runs them. Sets limit (this
# boot's whole-run limit), qemu_status and l1_silent (the seconds of silence after which L1 was
# stopped, or empty).
boot_l1() {
    local out=$1; shift
    local list quiet=0 size=-1 now
    list=$(IFS=,; echo "$*")
    limit=$(run_limit "$@")
    l1_silent=""
    rm -f "$monitor.in" "$monitor.out" "$cache/qemu.pid" "$out.status" "$out.cpus" "$out.registers"
    mkfifo "$monitor.in" "$monitor.out"
    # panic=-1 with -no-reboot: an L1 panic ends QEMU at once instead of waiting for the limit.
    # L1 gets as many vCPUs as the largest L2 guest (4): with 2, a 4-vCPU L2 stalled for minutes and
    # then triple-faulted in about 1 run of 3 (overcommitted nested vCPUs under TCG); with 4, 8 of 8
    # passed. The log is written line by line, so a stalled L1 shows where it stopped.
    {
        timeout -k 10 "$limit" "$qemu" -accel tcg -cpu EPYC,+svm -m 2G -smp "${LAB_L1_CPUS:-4}" \
            -nographic -no-reboot -nic none -monitor "pipe:$monitor" -pidfile "$cache/qemu.pid" \
            -kernel "$cache/vmlinuz" -initrd "$cache/l1-initrd.img" \
            -append "console=ttyS0 panic=-1 nokaslr lab.scenarios=$list lab.verbose=${LAB_VERBOSE:-0}" \
            </dev/null 2>&1
        echo $? >"$out.status"
    } | stdbuf -oL tr -d '\r' >"$out" &
    local job=$!
    while kill -0 "$job" 2>/dev/null; do
        sleep 5
        now=$(stat -c %s "$out" 2>/dev/null || echo 0)
        if [ "$now" != "$size" ]; then size=$now quiet=0; else quiet=$((quiet + 5)); fi
        if [ "$quiet" -ge "$silence_limit" ] && [ -z "$l1_silent" ]; then
            l1_silent=$quiet
            dump_l1_cpus "$out.registers" >"$out.cpus"
            kill "$(cat "$cache/qemu.pid" 2>/dev/null)" 2>/dev/null
        fi
    done
    wait "$job"
    qemu_status=$(cat "$out.status" 2>/dev/null || echo "?")
    rm -f "$monitor.in" "$monitor.out"
}

# $1: a log, $2: a scenario. Prints the scenario's last PASS or FAIL line in the log, if any.
result_line() {
    grep -E "^(PASS $2\$|FAIL $2: )" "$1" | tail -n 1 || true
}

# $1: a log. Prints the scenarios of the rest that have no PASS or FAIL line in it.
without_result() {
    local log=$1 name; shift
    for name in "$@"; do
        [ -n "$(result_line "$log" "$name")" ] || echo "$name"
    done
}

start=$(date +%s.%N)
set +e
boot_l1 "$log" "${scenarios[@]}"
set -e
# L1 stopped responding (nested KVM inside TCG has hung there, once in CI, at an L2 boot): its
# vCPUs are shown, and the scenarios left without a result run once more in a fresh L1.
second_boot=""
if [ -n "$l1_silent" ]; then
    stuck=$(sed -n 's/^LAB start //p' "$log" | tail -n 1)
    mapfile -t rest < <(without_result "$log" "${scenarios[@]}")
    {
        echo "lab: L1 stopped responding during ${stuck:-its boot}: no console output for ${l1_silent}s. Its vCPUs then:"
        sed 's/^/  /' "$log.cpus"
        echo "  (all their registers: $log.registers)"
    } >&2
    if [ "${#rest[@]}" -gt 0 ]; then
        echo "lab: running ${rest[*]} again in a second L1" >&2
        second_boot="the first L1 stopped responding during ${stuck:-its boot}"
        set +e
        boot_l1 "$cache/second-run.log" "${rest[@]}"
        set -e
        { echo "LAB second L1 boot for: ${rest[*]}"; cat "$cache/second-run.log"; } >>"$log"
        if [ -n "$l1_silent" ]; then
            { echo "lab: the second L1 stopped responding as well. Its vCPUs then:"; sed 's/^/  /' "$cache/second-run.log.cpus"; } >&2
        fi
    fi
fi
total=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || awk "BEGIN { print $(date +%s.%N) - $start }")

passed=0 failed=0
incomplete=0
for name in "${scenarios[@]}"; do
    line=$(result_line "$log" "$name")
    if [ -z "$line" ]; then
        incomplete=1
        if [ -n "$l1_silent" ]; then
            line="FAIL $name: no result (L1 stopped responding: no console output for ${l1_silent}s)"
        elif [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
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
    # A scenario that got its result from the second L1 says so.
    if [ -n "$second_boot" ] && [ -n "$(result_line "$cache/second-run.log" "$name")" ]; then
        line="$line (in a second L1: $second_boot)"
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
