import CKVM
import Glibc
import KVM
import Synchronization

/// What one vCPU thread is doing, for the state report (SIGUSR2, `--timeout`): in the guest, or
/// inside hv handling an exit. A thread that does not answer a report request is stuck in hv, and
/// this says on what; its exit count, read twice, says whether it moves at all.
final class VCPUActivity: Sendable {
    /// What hv is handling for this vCPU, in the top byte; the port, address or MSR below it.
    enum Handling: UInt64 {
        case nothing = 0, portInput, portOutput, mmioRead, mmioWrite, msrRead, msrWrite, ioapicEOI
    }

    static let detailMask: UInt64 = (1 << 56) - 1
    let handling = Atomic<UInt64>(0)
    /// KVM_RUN returns on this vCPU (the partition-wide count is `PartitionControl.exits`).
    let exits = Atomic<UInt64>(0)
    /// The last report request this vCPU answered (`PartitionControl.reportRequests`).
    let answered = Atomic<UInt64>(0)

    func begin(_ what: Handling, _ detail: UInt64) {
        handling.store(what.rawValue << 56 | (detail & VCPUActivity.detailMask), ordering: .relaxed)
    }

    func end() { handling.store(0, ordering: .relaxed) }

    func begin(_ exit: VCPUExit) {
        switch exit {
        case .io(let io): begin(io.direction == .input ? .portInput : .portOutput, UInt64(io.port))
        case .mmio(let access): begin(access.isWrite ? .mmioWrite : .mmioRead, access.address)
        case .msr(let access): begin(access.isWrite ? .msrWrite : .msrRead, UInt64(access.index))
        case .ioapicEOI(let vector): begin(.ioapicEOI, UInt64(vector))
        default: end()
        }
    }

    /// "in the guest" or "handling port 0x3f8 output", from a value of `handling`.
    static func describe(_ value: UInt64) -> String {
        let detail = "0x" + String(value & detailMask, radix: 16)
        switch Handling(rawValue: value >> 56) ?? .nothing {
        case .nothing: return "in the guest"
        case .portInput: return "handling port \(detail) input"
        case .portOutput: return "handling port \(detail) output"
        case .mmioRead: return "handling an MMIO read at \(detail)"
        case .mmioWrite: return "handling an MMIO write at \(detail)"
        case .msrRead: return "handling RDMSR \(detail)"
        case .msrWrite: return "handling WRMSR \(detail)"
        case .ioapicEOI: return "handling the IOAPIC EOI of vector \(detail)"
        }
    }
}

extension Partition {
    /// How long the main thread waits for every vCPU thread to answer a report request.
    static let reportAnswerSeconds = 1.0

    /// Every vCPU's registers and exit count, written to stderr by the vCPU threads themselves (KVM
    /// takes register ioctls only between KVM_RUNs), with a line for each thread that did not answer
    /// within a second. Asked for with SIGUSR2 while the guest runs; the guest goes on.
    func reportRunningVCPUs(threads: [pthread_t]) {
        let request = control.reportRequests.add(1, ordering: .sequentiallyConsistent).newValue
        let before = activities.map { $0.exits.load(ordering: .relaxed) }
        Partition.writeStandardError("hv: vCPU state report \(request) (SIGUSR2); the guest runs on\n")
        // immediate_exit first, then the signal: a thread about to enter KVM_RUN cannot miss the request.
        for vcpu in vcpus { vcpu.setImmediateExit(true) }
        for thread in threads { _ = ckvm_pthread_kill(thread, Partition.kickSignal) }
        let deadline = monotonicSeconds() + Partition.reportAnswerSeconds
        while monotonicSeconds() < deadline && activities.contains(where: { $0.answered.load(ordering: .acquiring) < request }) {
            usleep(5_000)
        }
        for (index, activity) in activities.enumerated() where activity.answered.load(ordering: .acquiring) < request {
            let exits = activity.exits.load(ordering: .relaxed)
            let doing = VCPUActivity.describe(activity.handling.load(ordering: .relaxed))
            let movement = exits == before[index] ? "no exit since the request" : "\(exits - before[index]) exits since the request"
            Partition.writeStandardError("vCPU \(index): no answer within \(Partition.reportAnswerSeconds) s: its thread is \(doing) (\(movement), \(exits) in all)\n")
        }
    }

    /// The same report after `run` returned (every vCPU thread has ended): for a `--timeout`.
    public func vcpuReport() -> String {
        vcpus.enumerated().map { index, vcpu in
            VCPULoop.report(vcpu: vcpu, activity: activities[index])
        }.joined(separator: "\n")
    }

    /// One write(2), so reports from several threads do not interleave within a line.
    static func writeStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
