import ArgumentParser
import Devices
import Glibc
import KVM
import Logging
import NetworkBackends
import Partition
import VMBus
import VSP

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a kernel image (PVH ELF or Linux bzImage) in a new partition.",
        discussion: """
        The guest's exit status becomes hv's: writing byte N to I/O port 0x501 ends hv with status N.
        With a terminal on stdin, the serial console is raw: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.
        hv's own statuses: 64 usage, 65 bad image, 66 unreadable file, 69 no usable KVM, 71 host
        failure, 120 guest reboot, 121 guest crash, 124 timeout, 128+N signal N.
        SIGUSR2 prints every vCPU's registers to stderr (and says which vCPU thread is stuck in hv, if
        one is); the guest runs on. A --timeout prints them too.
        """
    )

    @Argument(help: "Kernel image: an ELF with a PVH note, or a Linux bzImage.")
    var image: String

    @Option(help: "Initial ramdisk, handed to the kernel as its initrd (PVH: module 0).")
    var initrd: String?

    @Option(help: "Kernel command line.")
    var cmdline: String = ""

    @Option(help: "Guest RAM, e.g. 256M or 4G (a bare number is MiB).")
    var memory: String = "256M"

    @Option(help: "Number of vCPUs.")
    var cpus: Int = 1

    @Option(help: "Where the guest's serial port (COM1) goes: stdio, or file:PATH.")
    var serial: String = "stdio"

    @Option(help: "Stop the guest after this many seconds (exit status 124).")
    var timeout: Double?

    @Flag(help: "Restart the guest when it asks for a reset, instead of exiting with status 120.")
    var reboot = false

    @Option(help: "A name for this VM, for `hv stop --name`.")
    var name: String?

    @Flag(inversion: .prefixedNo, help: """
        Show the guest Hyper-V and serve VMBus (heartbeat and shutdown integration components). Without it the         guest sees plain KVM (kvmclock) and hv stop / SIGTERM stop it at once.
        """)
    var vmbus = true

    @Option(help: "Seconds the guest has to shut down after `hv stop` or SIGTERM before it is stopped anyway.")
    var grace: Double = 30

    @Option(help: ArgumentHelp("""
        A network adapter (repeatable): KIND,net=SPEC[,mac=XX:XX:XX:XX:XX:XX]. KIND is synthetic (NetVSP over VMBus;         Linux: hv_netvsc) or emulated (Intel 82540EM on hv's PCI bus; Linux: e1000). SPEC is tap:NAME (created if         missing), pcap:IFACE, null, or null:rx=SIZE[,count=N][,rate=FPS].
        """, valueName: "nic"))
    var nic: [String] = []

    @Option(help: "Write every frame of every NIC, both directions, to this pcap file.")
    var capture: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func validate() throws {
        guard cpus >= 1 else { throw ValidationError("--cpus must be at least 1 (got \(cpus))") }
        guard parseMemorySize(memory) != nil else {
            throw ValidationError("--memory '\(memory)' is not a size (examples: 64M, 2G, 512)")
        }
        guard serial == "stdio" || (serial.hasPrefix("file:") && serial.count > 5) else {
            throw ValidationError("--serial must be 'stdio' or 'file:PATH' (got '\(serial)')")
        }
        if let timeout, !(timeout > 0 && timeout.isFinite) {
            throw ValidationError("--timeout must be a positive number of seconds")
        }
        if let name, !VMName.isValid(name) {
            throw ValidationError("--name '\(name)' is not a VM name (up to 64 letters, digits, '.', '_', '-')")
        }
        guard grace >= 0, grace.isFinite else { throw ValidationError("--grace must be a number of seconds") }
        let nics = try parsedNICs()
        if !vmbus, nics.contains(where: { $0.kind == .synthetic }) {
            throw ValidationError("--nic synthetic needs VMBus: drop --no-vmbus or use --nic emulated")
        }
    }

    func parsedNICs() throws -> [NICOption] {
        do { return try nic.map { text throws(NICOptionError) in try NICOption(parsing: text) } } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        // A closed stdout (hv piped into `head`) must end in EPIPE on write, not kill hv mid-guest.
        signal(SIGPIPE, SIG_IGN)
        Partition.blockControlSignals()
        var logger = Logger(label: "hv")
        logger.logLevel = logLevel
        if let name {
            do { try VMName(name).claim() } catch {
                printError(error.description)
                throw ExitCode(ExitStatus.usage)
            }
        }
        do {
            let status = try boot(logger: logger)
            throw ExitCode(status)
        } catch let error as PartitionError {
            printError(error.description)
            throw ExitCode(ExitStatus.forError(error))
        }
    }

    func boot(logger: Logger) throws(PartitionError) -> Int32 {
        let system: KVMSystem
        do { system = try KVMSystem(path: kvmDevicePath()) } catch { throw .kvm(error) }
        let request = BootRequest(
            imageName: image,
            image: try ImageFile.read(image, what: "kernel image"),
            initrd: try initrd.map { path throws(PartitionError) in try ImageFile.read(path, what: "initrd") },
            cmdline: cmdline)
        let output: any SerialOutput = serial == "stdio"
            ? FileSerialOutput(fd: STDOUT_FILENO)
            : try FileSerialOutput(path: String(serial.dropFirst("file:".count)))
        // One capture file for the whole run, reboots included.
        let recorder: CaptureRecorder?
        do { recorder = try capture.map { path throws(NetworkBackendError) in try CaptureRecorder(path: path) } } catch {
            throw .configuration(error.description)
        }
        defer { recorder?.close() }
        let configuration = PartitionConfiguration(memorySize: parseMemorySize(memory)!, cpuCount: cpus,
                                                   hypervisorLeaves: vmbus ? HyperVCPUID.leaves() : nil, vmbus: vmbus)
        // --timeout bounds the whole run, reboots included.
        let deadline = timeout.map { monotonicSeconds() + $0 }
        var restarts = 0
        while true {
            let remaining = deadline.map { max($0 - monotonicSeconds(), 0.001) }
            let reason = try bootOnce(system: system, configuration: configuration, request: request, output: output,
                                      recorder: recorder, timeout: remaining, logger: logger)
            switch reason {
            case .reboot where reboot:
                restarts += 1
                logger.info("guest requested a reset; restarting (restart \(restarts))")
                continue
            case .crash(let report):
                printError("guest crashed: \(report)")
            case .hostFailure(let message):
                printError(message)
            case .timeout:
                break // bootOnce reported it, with the vCPUs' registers
            default:
                break
            }
            return ExitStatus.forStop(reason)
        }
    }

    /// One life of the guest: a fresh partition, devices, kernel, run until it stops.
    func bootOnce(system: KVMSystem, configuration: PartitionConfiguration, request: BootRequest,
                  output: any SerialOutput, recorder: CaptureRecorder?, timeout: Double?,
                  logger: Logger) throws(PartitionError) -> StopReason {
        let partition = try Partition(system: system, configuration: configuration, logger: logger)
        let devices = PCPlatform.attach(to: partition, serialOutput: output)
        let adapters = try NetworkAdapters(options: (try? parsedNICs()) ?? [], partition: partition, recorder: recorder, logger: logger)
        defer { adapters.stop() }
        var gracefulStop: GracefulStop?
        var host: VMBusHost?
        if vmbus {
            let hyperv = try HyperVInterface(partition: partition)
            try partition.install(hypervisor: hyperv)
            let shutdown = ShutdownDevice(logger: logger)
            host = VMBusHost(partition: partition, hyperv: hyperv,
                             devices: [HeartbeatDevice(logger: logger), shutdown] + adapters.vmbusDevices)
            gracefulStop = GracefulStop(gracePeriod: grace) { shutdown.requestShutdown() }
        }
        defer { host?.stop() }
        let boot = try KernelLoader.load(request, into: partition.memory, platform: adapters.platform)
        var console: SerialConsole?
        if serial == "stdio" {
            console = try SerialConsole(uart: devices.uart, control: partition.control)
            try console?.start()
        }
        defer { console?.stop() }
        let reason = try partition.run(boot: boot, timeout: timeout, gracefulStop: gracefulStop)
        if reason == .timeout {
            printError("guest stopped: --timeout of \(self.timeout ?? 0) seconds ran out; the vCPUs then:\n\(partition.vcpuReport())")
        }
        return reason
    }
}

/// /dev/kvm, or the device named by HV_KVM_DEVICE (so tests can point hv at a missing one).
func kvmDevicePath() -> String {
    getenv("HV_KVM_DEVICE").map { String(cString: $0) } ?? KVMSystem.defaultPath
}

func printError(_ message: String) {
    var line = "hv: error: \(message)\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
