import CKVM
import Glibc
import KVM
import Logging
import Synchronization

public struct PartitionConfiguration: Sendable {
    public var memorySize: UInt64
    public var cpuCount: Int
    /// CPUID leaves that replace KVM's hypervisor leaves (0x4000_0000 up), or nil to keep KVM's.
    public var hypervisorLeaves: [kvm_cpuid_entry2]?
    /// Describe a VMBus in the ACPI tables.
    public var vmbus: Bool
    public init(memorySize: UInt64, cpuCount: Int, hypervisorLeaves: [kvm_cpuid_entry2]? = nil, vmbus: Bool = false) {
        self.memorySize = memorySize
        self.cpuCount = cpuCount
        self.hypervisorLeaves = hypervisorLeaves
        self.vmbus = vmbus
    }
}

/// One child partition: a KVM VM with its RAM, vCPUs, IOAPIC and I/O buses. Build it, attach
/// devices, load a kernel into `memory`, then `run` it until something stops it.
public final class Partition: Sendable {
    /// APIC IDs are 8 bits (xAPIC); 255 is broadcast and the IOAPIC takes the ID after the last vCPU.
    public static let maximumVCPUs = 254
    /// SIGUSR1 interrupts a vCPU thread's KVM_RUN when the partition stops or wants a report.
    static let kickSignal = SIGUSR1
    /// SIGUSR2 to hv asks for a report of every vCPU's state (stderr); the guest runs on.
    public static let reportSignal = SIGUSR2

    public let configuration: PartitionConfiguration
    public let vm: VirtualMachine
    public let memory: GuestMemory
    public let vcpus: [VirtualCPU]
    public let ioapic: IOAPIC
    public let control: PartitionControl
    /// One per vCPU, for state reports.
    let activities: [VCPUActivity]
    /// What the firmware tables tell the guest: vCPUs 0..<n with APIC IDs 0..<n, the IOAPIC with ID n.
    public let platform: PlatformDescription
    public let logger: Logger
    let hypervisor = Mutex<(any HypervisorInterface)?>(nil)
    let devices = Mutex<(ports: AddressRangeMap<UInt16, any PortDevice>, mmio: AddressRangeMap<UInt64, any MMIODevice>)>(
        (AddressRangeMap(), AddressRangeMap()))

    public init(system: KVMSystem, configuration: PartitionConfiguration, logger: Logger) throws(PartitionError) {
        let hostLimit = system.maxVCPUs
        guard configuration.cpuCount >= 1 else { throw .configuration("--cpus must be at least 1") }
        guard configuration.cpuCount <= min(hostLimit, Partition.maximumVCPUs) else {
            throw .configuration("--cpus \(configuration.cpuCount) is above the limit of \(min(hostLimit, Partition.maximumVCPUs)) vCPUs (this host's KVM allows \(hostLimit); hv's xAPIC IDs, with the IOAPIC's after them, allow \(Partition.maximumVCPUs))")
        }
        for capability in KVMCapability.used where capability.required && system.check(capability.number) == 0 {
            throw .kvm(KVMError("this host's KVM lacks \(capability.name), needed for \(capability.purpose)", errno: ENOTSUP))
        }
        self.configuration = configuration
        self.logger = logger
        platform = PlatformDescription(cpuCount: configuration.cpuCount, ioapicID: UInt8(configuration.cpuCount),
                                       vmbus: configuration.vmbus)
        let map = try MemoryMap(ramSize: configuration.memorySize)
        do {
            vm = try system.createVM()
            try vm.setTSSAddress(MemoryMap.kvmTSSAddress)
            try vm.setIdentityMapAddress(MemoryMap.kvmIdentityMapAddress)
            try vm.enableSplitIRQChip(ioapicPins: UInt64(IOAPIC.pinCount))
        } catch { throw .kvm(error) }
        memory = try GuestMemory(map: map)
        try memory.register(with: vm)
        control = try PartitionControl()
        activities = (0..<configuration.cpuCount).map { _ in VCPUActivity() }
        ioapic = IOAPIC(sink: KVMInterruptSink(vm: vm, logger: logger), id: platform.ioapicID)
        do {
            var cpuid = try system.supportedCPUID()
            if let leaves = configuration.hypervisorLeaves { cpuid.replaceHypervisorLeaves(with: leaves) }
            var vcpus: [VirtualCPU] = []
            for index in 0..<configuration.cpuCount {
                let vcpu = try vm.createVCPU(id: UInt32(index))
                try VCPUSetup.configure(vcpu, index: index, count: configuration.cpuCount, supportedCPUID: cpuid)
                vcpus.append(vcpu)
            }
            self.vcpus = vcpus
        } catch { throw .kvm(error) }
        attach(mmio: MemoryMap.ioapicBase...(MemoryMap.ioapicBase + IOAPIC.mmioSize - 1), ioapic)
    }

    /// Routes `interface`'s MSRs to it through KVM's MSR filter and its ports to it with the vCPU
    /// at hand. Call before `run`; the partition must have been configured with its CPUID leaves.
    public func install(hypervisor interface: any HypervisorInterface) throws(PartitionError) {
        for capability in [KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_MSR_FILTER] where vm.system.check(capability) == 0 {
            throw .kvm(KVMError("this host's KVM lacks \(capability == KVM_CAP_X86_MSR_FILTER ? "KVM_CAP_X86_MSR_FILTER" : "KVM_CAP_X86_USER_SPACE_MSR"), needed for the Hyper-V interface (VMBus)", errno: ENOTSUP))
        }
        do {
            try vm.enableUserSpaceMSRExits()
            try vm.setMSRFilter(userSpaceRanges: interface.msrRanges)
        } catch { throw .kvm(error) }
        hypervisor.withLock { $0 = interface }
    }

    public func attach(ports: ClosedRange<UInt16>, _ device: any PortDevice) {
        devices.withLock { $0.ports.insert(ports, device) }
    }

    public func attach(mmio: ClosedRange<UInt64>, _ device: any MMIODevice) {
        devices.withLock { $0.mmio.insert(mmio, device) }
    }

    /// Runs every vCPU on its own thread, the boot vCPU entering `boot`, until the guest or
    /// the host stops it (exit port, reset, crash, `timeout` seconds, SIGINT/SIGTERM).
    /// Every vCPU thread has ended when this returns.
    /// With `gracefulStop`, SIGTERM first asks the guest to shut down and forces the stop only after the grace
    /// period (or on a second SIGTERM); without it, or when the guest cannot be asked, SIGTERM stops at once.
    public func run(boot: BootTrampoline, timeout: Double?, gracefulStop: GracefulStop? = nil) throws(PartitionError) -> StopReason {
        do { try VCPUSetup.enterTrampoline(vcpus[0]) } catch { throw .kvm(error) }
        let bus = devices.withLock { IOBus(ports: $0.ports, mmio: $0.mmio, logger: logger) }

        // SIGINT/SIGTERM/SIGUSR2 come through a signalfd, so no thread is ever interrupted by them.
        // (A process should block them before it starts any thread: `blockControlSignals`.)
        var previousMask = sigset_t()
        _ = ckvm_block_signals(SIGINT, SIGTERM, Partition.reportSignal, &previousMask)
        let signals = ckvm_signalfd(SIGINT, SIGTERM, Partition.reportSignal)
        guard signals >= 0 else { throw .hostErrno("signalfd for SIGINT/SIGTERM/SIGUSR2") }
        defer {
            close(signals)
            _ = pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }
        guard ckvm_install_kick_handler(Partition.kickSignal) == 0 else { throw .hostErrno("sigaction for the vCPU kick signal") }

        var threads: [pthread_t] = []
        let hypervisor = hypervisor.withLock { $0 }
        for (index, vcpu) in vcpus.enumerated() {
            let loop = VCPULoop(vcpu: vcpu, vp: index, bus: bus, ioapic: ioapic, hypervisor: hypervisor,
                                control: control, activity: activities[index], logger: logger)
            do {
                threads.append(try Partition.startThread {
                    // Whatever mask hv inherited, the kick must reach this thread.
                    _ = ckvm_thread_sigmask(SIG_UNBLOCK, Partition.kickSignal, 0, 0)
                    loop.run()
                })
            } catch {
                control.requestStop(.hostFailure(error.description))
                break
            }
        }

        waitForStop(signals: signals, timeout: timeout, gracefulStop: gracefulStop) { reportRunningVCPUs(threads: threads) }
        stopVCPUs(threads: threads)
        return control.stopReason ?? .hostFailure("partition stopped without a reason")
    }

    /// Blocks the signals `run` takes through its signalfd (SIGINT, SIGTERM, SIGUSR2) in the calling
    /// thread and so in every thread it starts after this. A program calls it first, before any thread
    /// exists: a thread that left them unblocked would take them and be killed by them. Signals that
    /// come before `run` wait for it; between reboots they wait for the next one.
    public static func blockControlSignals() {
        _ = ckvm_thread_sigmask(SIG_BLOCK, SIGINT, SIGTERM, reportSignal)
    }

    /// Sleeps until the control's eventfd fires, a stopping signal arrives, or the timeout passes;
    /// calls `report` for each SIGUSR2.
    func waitForStop(signals: Int32, timeout: Double?, gracefulStop: GracefulStop?, report: () -> Void) {
        let deadline = timeout.map { monotonicSeconds() + $0 }
        var graceDeadline: Double?
        while !control.isStopping {
            var fds = [pollfd(fd: control.wakeFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            let now = monotonicSeconds()
            if let deadline, deadline <= now { control.requestStop(.timeout); break }
            if let graceDeadline, graceDeadline <= now {
                logger.warning("the guest did not shut down within \(gracefulStop?.gracePeriod ?? 0) s of SIGTERM: stopping it")
                control.requestStop(.signal(SIGTERM))
                break
            }
            let wakeAt = [deadline, graceDeadline].compactMap { $0 }.min()
            let waitMilliseconds = wakeAt.map { Int32(min(($0 - now) * 1000 + 1, Double(Int32.max))) } ?? -1
            let ready = poll(&fds, 2, waitMilliseconds)
            if ready > 0 && fds[1].revents & Int16(POLLIN) != 0 {
                var info = signalfd_siginfo()
                guard read(signals, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size else { continue }
                let signal = Int32(info.ssi_signo)
                if signal == Partition.reportSignal {
                    report()
                } else if signal == SIGTERM, graceDeadline == nil, let gracefulStop, gracefulStop.request() {
                    logger.info("SIGTERM: asked the guest to shut down; forcing the stop in \(gracefulStop.gracePeriod) s")
                    graceDeadline = monotonicSeconds() + gracefulStop.gracePeriod
                } else {
                    control.requestStop(.signal(signal))
                }
            }
        }
    }

    /// Stops every vCPU loop and joins its thread. The stop reason is already set, so a loop
    /// that checks it exits; immediate_exit makes any later KVM_RUN return at once, and the
    /// signal interrupts one already inside. Set first, then signal: no kick can be lost.
    func stopVCPUs(threads: [pthread_t]) {
        for vcpu in vcpus { vcpu.setImmediateExit(true) }
        for thread in threads { _ = ckvm_pthread_kill(thread, Partition.kickSignal) }
        for thread in threads { pthread_join(thread, nil) }
    }
}

/// Delivers IOAPIC messages with KVM_SIGNAL_MSI and keeps KVM's GSI routes in step.
final class KVMInterruptSink: MSISink {
    let vm: VirtualMachine
    let logger: Logger
    let failures = Atomic<UInt64>(0)

    init(vm: VirtualMachine, logger: Logger) {
        self.vm = vm
        self.logger = logger
    }

    func deliver(address: UInt64, data: UInt32) {
        do { try vm.signalMSI(address: address, data: data) } catch { noteFailure(error) }
    }

    func routesChanged(_ routes: [VirtualMachine.MSIRoute]) {
        do { try vm.setGSIRouting(routes) } catch { noteFailure(error) }
    }

    func noteFailure(_ error: KVMError) {
        let count = failures.wrappingAdd(1, ordering: .relaxed).newValue
        if RateLimit.shouldLog(count) { logger.warning("interrupt delivery failed: \(error) (\(count) so far)") }
    }
}

/// Seconds on the monotonic clock, for deadlines.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
