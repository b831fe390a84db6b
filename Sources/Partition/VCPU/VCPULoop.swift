import KVM
import Logging

/// One vCPU's thread body: KVM_RUN, decode the exit, hand it to the bus or the IOAPIC, again,
/// until the partition stops. Exits that end the guest become a StopReason with the registers.
struct VCPULoop: Sendable {
    let vcpu: VirtualCPU
    /// The vCPU's index: its APIC ID and its Hyper-V VP index.
    let vp: Int
    let bus: IOBus
    let ioapic: IOAPIC
    let hypervisor: (any HypervisorInterface)?
    let control: PartitionControl
    let activity: VCPUActivity
    let logger: Logger

    func run() {
        while !control.isStopping {
            let exit: VCPUExit
            do { exit = try vcpu.runOnce() } catch {
                control.requestStop(.hostFailure(error.description))
                return
            }
            control.exits.add(1, ordering: .relaxed)
            activity.exits.add(1, ordering: .relaxed)
            activity.begin(exit)
            defer { activity.end() }
            switch exit {
            case .io(let io) where hypervisor?.ports.contains(io.port) == true:
                hypervisor!.portIO(io, vp: vp, vcpu: vcpu)
            case .io(let io):
                bus.handlePortIO(direction: io.direction, port: io.port, size: io.size, data: io.data)
            case .mmio(let access):
                bus.handleMMIO(address: access.address, isWrite: access.isWrite, data: access.data)
            case .msr(let access):
                handleMSR(access)
            case .ioapicEOI(let vector):
                ioapic.endOfInterrupt(vector: vector)
            case .interrupted:
                answerInterruption()
            case .hlt:
                continue // with the in-kernel LAPIC, nothing to do
            case .shutdown:
                crash("triple fault (KVM_EXIT_SHUTDOWN)")
            case .failedEntry(let reason, let cpu):
                crash("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x\(String(reason, radix: 16)) on host CPU \(cpu)")
            case .internalError(let suberror, let data):
                let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
                crash("KVM_EXIT_INTERNAL_ERROR: suberror \(suberror)\(data.isEmpty ? "" : ", data \(words)")")
            case .systemEvent(let type):
                switch VCPUExit.systemEventName(type) {
                case "shutdown": control.requestStop(.powerOff)
                case "reset": control.requestStop(.reboot)
                default: crash("KVM_EXIT_SYSTEM_EVENT \(VCPUExit.systemEventName(type))")
                }
            case .unknown(let reason, let hardware):
                crash("unexpected KVM exit reason \(reason) (hardware reason 0x\(String(hardware, radix: 16)))")
            }
        }
    }

    /// Only filtered MSRs exit, and only an installed interface filters any; without one, #GP.
    func handleMSR(_ access: VCPUExit.MSRAccess) {
        guard let hypervisor else { return access.fail() }
        if access.isWrite {
            if hypervisor.writeMSR(access.index, value: access.value, vp: vp) { access.complete() } else { access.fail() }
        } else if let value = hypervisor.readMSR(access.index, vp: vp) {
            access.complete(value: value)
        } else {
            access.fail()
        }
    }

    /// A kick: the partition stops, or asks for a state report. immediate_exit is cleared before
    /// the stop flag is read, so a stop that set it just now is still seen (the loop's condition).
    func answerInterruption() {
        vcpu.setImmediateExit(false)
        if control.isStopping { vcpu.setImmediateExit(true); return }
        let request = control.reportRequests.load(ordering: .sequentiallyConsistent)
        guard activity.answered.load(ordering: .relaxed) < request else { return }
        Partition.writeStandardError(VCPULoop.report(vcpu: vcpu, activity: activity) + "\n")
        activity.answered.store(request, ordering: .releasing)
    }

    /// Registers and exit count, for a state report (the calling thread must own the vCPU).
    static func report(vcpu: VirtualCPU, activity: VCPUActivity) -> String {
        RegisterDump.format(vcpu) + "\n  exits=\(activity.exits.load(ordering: .relaxed))"
    }

    func crash(_ what: String) {
        control.requestStop(.crash("vCPU \(vcpu.id): \(what)\n\(RegisterDump.format(vcpu))"))
    }
}
