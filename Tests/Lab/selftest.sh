#!/usr/bin/env bash
# Checks the lab's own decision logic on the host before the lab starts:
# - reports_show_frozen_guest (Tests/Lab/l1-init, inside L1), which decides from hv's SIGUSR2
#   reports whether L2 froze inside nested KVM (then the lab retries the boot once); with
#   busybox's awk (L1's) when the lab's busybox is there, and the host's awk;
# - summarize_l1_cpus (Tests/Lab/run.sh, on the host), which reads QEMU's register dump of a hung L1.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
eval "$(sed -n '/^reports_show_frozen_guest() {/,/^}/p' "$root/Tests/Lab/l1-init")"
eval "$(sed -n '/^summarize_l1_cpus() {/,/^}/p' "$root/Tests/Lab/run.sh")"

report_vcpu() {  # vcpu rip rflags cr0 exits, in hv's RegisterDump layout
    cat <<END
vCPU $1 registers:
  rip=$2 rflags=$3 rsp=0000000000000000 rbp=0000000000000000
  cs=10 base=0000000000000000 l=1 db=0 dpl=0  ss=18 ds=18
  cr0=$4 cr2=0000000000000000 cr3=0000000000000000 cr4=0000000000000000 efer=0000000000000000
  exits=$5
END
}
# Two reports: vCPU 0 in long mode with interrupts off at one RIP, vCPU 1 waiting for its SIPI.
frozen_reports() {
    echo "hv: vCPU state report 1 (SIGUSR2); the guest runs on"
    report_vcpu 0 ffffffff81000010 0000000000000086 0000000080050033 500
    report_vcpu 1 000000000000fff0 0000000000000002 0000000060000010 1
    echo "hv: vCPU state report 2 (SIGUSR2); the guest runs on"
    report_vcpu 0 ffffffff81000010 0000000000000086 0000000080050033 501
    report_vcpu 1 000000000000fff0 0000000000000002 0000000060000010 2
}

dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
frozen_reports >"$dir/frozen"
sed 's/rflags=0000000000000086/rflags=0000000000000286/' "$dir/frozen" >"$dir/interrupts-on"
sed 's/exits=501/exits=900/' "$dir/frozen" >"$dir/exiting"
awk '/rip=ffffffff81000010/ && ++n == 2 { sub("ffffffff81000010", "ffffffff81000020") } { print }' "$dir/frozen" >"$dir/moving"
{ cat "$dir/frozen"; echo "vCPU 1: no answer within 1.0 s: its thread is handling port 0x3f8 output (no exit since the request, 2 in all)"; } >"$dir/stuck-in-hv"
sed -n '1,/^hv: vCPU state report 2/p' "$dir/frozen" | sed '$d' >"$dir/one-report"
: >"$dir/empty"

failures=0
check() {  # awk-name file want(0 frozen, 1 not) what
    reports_show_frozen_guest "$dir/$2"; got=$?
    if [ "$got" = "$3" ]; then echo "ok   $1: $4"; else echo "FAIL $1: $4 (got $got, want $3)"; failures=$((failures + 1)); fi
}
run_checks() {
    check "$1" frozen 0 "interrupts off, no exits, RIP still: frozen"
    check "$1" interrupts-on 1 "interrupts on: may wait for an interrupt, not frozen"
    check "$1" exiting 1 "exits between the reports: not frozen"
    check "$1" moving 1 "RIP moved: not frozen"
    check "$1" stuck-in-hv 1 "a vCPU thread stuck in hv: not frozen"
    check "$1" one-report 1 "one report only: no verdict"
    check "$1" empty 1 "no report: no verdict"
}
run_checks awk

# QEMU's `info registers -a`, cut down: a vCPU in long mode and one waiting for its SIPI.
cat >"$dir/registers" <<'END'
(qemu) info registers -a
CPU#0
RAX=0000000000000000 RBX=ffffffff82a0a940 RCX=0000000000000001 RDX=0000000000000000
RIP=ffffffff81a17a0b RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
CPU#1
EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1
EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1
END
want="L1 vCPU 0: rip ffffffff81a17a0b CPL=0 HLT=1
L1 vCPU 1: eip 0000fff0 CPL=0 HLT=1"
got=$(summarize_l1_cpus "$dir/registers")
if [ "$got" = "$want" ]; then echo "ok   summarize_l1_cpus: one line per L1 vCPU"; else
    echo "FAIL summarize_l1_cpus: got:"; echo "$got"; failures=$((failures + 1)); fi

if [ -x "$root/.cache/lab/busybox" ]; then
    awk() { "$root/.cache/lab/busybox" awk "$@"; }
    run_checks "busybox awk"
fi
[ "$failures" = 0 ] && echo "lab selftest: passed" || { echo "lab selftest: $failures failed"; exit 1; }
