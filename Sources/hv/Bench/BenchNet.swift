import ArgumentParser
import CPcap
import Devices
import Glibc
import KVM
import Logging
import NetworkBackends
import Partition
import VMBus
import VSP

/// `hv bench net`: the synthetic NIC (NetVSP over VMBus) against the emulated one (e1000 on PCI), both driven by
/// the same guest stub workload (net.elf) on the same back end, and hv's e1000 against QEMU's.
struct BenchNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net",
        abstract: "Synthetic against emulated NIC throughput, and hv's e1000 against QEMU's.",
        discussion: """
        Boots net.elf with each NIC on the null back end: TX (the guest sends, burst 1 and 32 frames per doorbell) \
        and RX (the back end sends, the guest counts), at each frame size, a fixed frame count per case. Per case: \
        packets/s and Gbit/s as the guest measures them and as hv's back end sees them, user-space exits and \
        interrupts per 1000 packets and hv's CPU time per packet (the hv process: vCPU threads and guest included), \
        all three as slopes between a run and one with a tenth of the frames, so boot costs cancel out. Then, as \
        root with QEMU installed, hv's e1000 and QEMU's (microvm,pcie=on, KVM) send through a tap each in a private \
        network namespace (no traffic reaches the host's networks). Prints a table, writes JSON and an SVG chart.
        """)

    @Option(help: "Frame sizes in bytes (comma-separated), 60 to 1514.")
    var sizes: String = "64,512,1514"

    @Option(help: "Frames per synthetic-NIC case; the e1000 cases use a quarter (burst 32, RX) or a twentieth (burst 1).")
    var frames: Int = 200_000

    @Option(help: "The guest stub's build folder.")
    var guests: String = "Guests/build"

    @Option(help: "QEMU binary; its rows are skipped if it is missing or hv is not root.")
    var qemu: String = "/usr/bin/qemu-system-x86_64"

    @Option(help: "Where to write the JSON results.")
    var json: String = "bench-net.json"

    @Option(help: "Where to write the SVG chart.")
    var chart: String = "bench-net.svg"

    func validate() throws {
        guard let parsed = parsedSizes, !parsed.isEmpty, parsed.allSatisfy({ (60...1514).contains($0) }) else {
            throw ValidationError("--sizes must be frame sizes from 60 to 1514, comma-separated")
        }
        guard frames >= 2000 else { throw ValidationError("--frames must be at least 2000") }
    }

    var parsedSizes: [Int]? { parseIntegerList(sizes) }

    enum NIC: String { case synthetic, emulated, qemuE1000 = "qemu-e1000" }
    enum Direction: String { case tx, rx }

    struct Case {
        var nic: NIC
        var direction: Direction
        var size: Int
        var burst: Int
        var backend: String
        var count: Int
        var label: String { "\(nic.rawValue) \(direction.rawValue) \(size) B" + (direction == .tx ? " burst \(burst)" : "") + " (\(backend))" }
    }

    struct Measurement {
        var guestPPS: Double
        var hvPPS: Double?
        var exitsPer1000: Double?
        var interruptsPer1000: Double?
        var cpuMicrosecondsPerPacket: Double?
        func gbps(_ size: Int) -> Double { guestPPS * Double(size) * 8 / 1e9 }
    }

    /// What one boot of net.elf left behind.
    struct Run {
        var nanoseconds: Double
        var exits: Double
        var interrupts: Double
        var cpuSeconds: Double
        var hvPPS: Double?
    }

    func run() throws {
        let image = guests + "/net.elf"
        guard access(image, R_OK) == 0 else { throw BenchError("\(image) is missing: run `make -C Guests` first") }
        // The tap rows run in a network namespace of hv's own; every thread and child made from here on is in it.
        let privateNetwork = getuid() == 0 && cpcap_unshare_network_namespace() == 0
        var results: [(Case, Measurement)] = []
        for size in parsedSizes! {
            for (nic, burst, count) in [(NIC.synthetic, 1, frames), (.synthetic, 32, frames),
                                        (.emulated, 1, max(2000, frames / 20)), (.emulated, 32, max(2000, frames / 4))] {
                let benchCase = Case(nic: nic, direction: .tx, size: size, burst: burst, backend: "null", count: count)
                results.append((benchCase, try measure(benchCase, image: image)))
                print("  " + line(benchCase, results.last!.1))
            }
            for (nic, count) in [(NIC.synthetic, frames), (.emulated, max(2000, frames / 4))] {
                let benchCase = Case(nic: nic, direction: .rx, size: size, burst: 1, backend: "null", count: count)
                results.append((benchCase, try measure(benchCase, image: image)))
                print("  " + line(benchCase, results.last!.1))
            }
        }
        var note = ""
        if !privateNetwork {
            note = "hv is not root or cannot make a network namespace: the tap rows (hv's e1000 against QEMU's) were skipped"
        } else if access(qemu, X_OK) != 0 {
            note = "\(qemu) not found: QEMU's rows were skipped"
        }
        if privateNetwork {
            for size in parsedSizes! {
                for burst in [1, 32] {
                    let count = max(2000, frames / (burst == 1 ? 20 : 4))
                    let ours = Case(nic: .emulated, direction: .tx, size: size, burst: burst, backend: "tap", count: count)
                    results.append((ours, try measure(ours, image: image)))
                    print("  " + line(ours, results.last!.1))
                    if access(qemu, X_OK) == 0 {
                        let theirs = Case(nic: .qemuE1000, direction: .tx, size: size, burst: burst, backend: "tap", count: count)
                        results.append((theirs, try measureQEMU(theirs, image: image)))
                        print("  " + line(theirs, results.last!.1))
                    }
                }
            }
        }
        if !note.isEmpty { print("note: \(note)") }
        print(summary(results))
        try write(json: results, note: note)
        try writeChart(results)
        print("wrote \(json) and \(chart)")
    }

    // MARK: measuring

    /// A full run and one with a tenth of the frames: rates from the full run, per-packet costs from the slope.
    func measure(_ benchCase: Case, image: String) throws -> Measurement {
        let small = max(200, benchCase.count / 10)
        let base = try runHV(benchCase, count: small, image: image)
        let full = try runHV(benchCase, count: benchCase.count, image: image)
        let frames = Double(benchCase.count - small)
        return Measurement(
            guestPPS: Double(benchCase.count) / (full.nanoseconds / 1e9), hvPPS: full.hvPPS,
            exitsPer1000: (full.exits - base.exits) / frames * 1000,
            interruptsPer1000: (full.interrupts - base.interrupts) / frames * 1000,
            cpuMicrosecondsPerPacket: (full.cpuSeconds - base.cpuSeconds) / frames * 1e6)
    }

    func guestCommandLine(_ benchCase: Case, count: Int) -> String {
        let nic = benchCase.nic == .synthetic ? "netvsc" : "e1000"
        switch benchCase.direction {
        case .tx: return "nic=\(nic) mode=tx size=\(benchCase.size) count=\(count) burst=\(benchCase.burst)"
        case .rx: return "nic=\(nic) mode=rx size=\(benchCase.size) count=\(count) promisc=1"
        }
    }

    /// Boots net.elf once in this process with one NIC and reads what the guest printed and what hv counted.
    func runHV(_ benchCase: Case, count: Int, image: String) throws -> Run {
        var logger = Logger(label: "hv-bench")
        logger.logLevel = .warning
        let partition = try Partition(system: try KVMSystem(path: kvmDevicePath()), configuration: PartitionConfiguration(
            memorySize: 256 << 20, cpuCount: 1, hypervisorLeaves: HyperVCPUID.leaves(), vmbus: true), logger: logger)
        let serial = CapturedSerial()
        _ = PCPlatform.attach(to: partition, serialOutput: serial)
        let inner: any NetworkBackend
        switch (benchCase.backend, benchCase.direction) {
        case ("tap", _): inner = try TapBackend(interface: "hvbench0")
        case (_, .rx): inner = NullBackend(source: .frames(size: benchCase.size))
        default: inner = NullBackend()
        }
        let backend = MeasuredBackend(inner)
        let mac: [UInt8] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x01]
        let hyperv = try HyperVInterface(partition: partition)
        try partition.install(hypervisor: hyperv)
        var platform = partition.platform
        var e1000: E1000?
        var devices: [any VMBusDevice] = []
        if benchCase.nic == .synthetic {
            devices.append(NetVSPDevice(mac: mac, backend: backend, logger: logger))
        } else {
            let bus = PCIBus.attach(to: partition)
            let nic = try E1000(mac: mac, backend: backend, memory: partition.memory, logger: logger,
                                       transmitInBackground: true)
            try bus.plug(nic)
            try nic.start()
            e1000 = nic
            platform.pci = bus.firmwareDescription
        }
        let host = VMBusHost(partition: partition, hyperv: hyperv, devices: devices)
        defer {
            host.stop()
            e1000?.stop()
        }
        let request = BootRequest(imageName: image, image: try ImageFile.read(image, what: "guest stub"),
                                  cmdline: guestCommandLine(benchCase, count: count))
        let boot = try KernelLoader.load(request, into: partition.memory, platform: platform)
        let cpuBefore = processCPUSeconds()
        let reason = try partition.run(boot: boot, timeout: 600)
        let cpu = processCPUSeconds() - cpuBefore
        let text = serial.text
        guard reason == .guestExit(0), let nanoseconds = benchField("ns", in: text, line: "net-bench ") else {
            throw BenchError("net.elf \(guestCommandLine(benchCase, count: count)) stopped with \(reason):\n\(text)")
        }
        let interrupts = benchCase.nic == .synthetic
            ? Double(hyperv.counters.interrupts.load(ordering: .relaxed)) : Double(e1000?.counters.interrupts ?? 0)
        let hvRate = benchCase.direction == .tx ? backend.transmitted.withLock { $0.rate } : backend.received.withLock { $0.rate }
        return Run(nanoseconds: nanoseconds, exits: Double(partition.control.exits.load(ordering: .relaxed)),
                   interrupts: interrupts, cpuSeconds: cpu, hvPPS: hvRate)
    }

    /// QEMU's e1000 with the same image and workload, on a tap in the same private namespace.
    func measureQEMU(_ benchCase: Case, image: String) throws -> Measurement {
        let arguments = [qemu, "-machine", "microvm,pcie=on", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", "256M",
                         "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                         "-device", "isa-debug-exit,iobase=0x501,iosize=1",
                         "-device", "e1000,netdev=n0,mac=52:54:00:00:00:02",
                         "-netdev", "tap,id=n0,ifname=hvbenchq0,script=no,downscript=no",
                         "-kernel", image, "-append", guestCommandLine(benchCase, count: benchCase.count)]
        var before = rusage(), after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        let run = try TimedProcess.run(arguments, timeLimit: 600)
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        let text = String(decoding: run.output, as: UTF8.self)
        // isa-debug-exit turns the guest's 0 into QEMU's 1.
        guard run.status == 1, let nanoseconds = benchField("ns", in: text, line: "net-bench ") else {
            throw BenchError("QEMU: \(arguments.joined(separator: " ")) exited with \(run.status):\n\(text)")
        }
        let cpu = seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)
        return Measurement(guestPPS: Double(benchCase.count) / (nanoseconds / 1e9), hvPPS: nil, exitsPer1000: nil,
                           interruptsPer1000: nil, cpuMicrosecondsPerPacket: cpu / Double(benchCase.count) * 1e6)
    }

    func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    func seconds(_ value: timeval) -> Double { Double(value.tv_sec) + Double(value.tv_usec) / 1e6 }

    // MARK: output

    static let header = ["case", "guest Mpps", "guest Gbit/s", "hv Mpps", "exits/1k", "irqs/1k", "CPU µs/pkt"]

    func line(_ benchCase: Case, _ m: Measurement) -> String {
        let cells = [benchCase.label, formatted(m.guestPPS / 1e6), formatted(m.gbps(benchCase.size)),
                     m.hvPPS.map { formatted($0 / 1e6) } ?? "-", m.exitsPer1000.map(formatted) ?? "-",
                     m.interruptsPer1000.map(formatted) ?? "-", m.cpuMicrosecondsPerPacket.map(formatted) ?? "-"]
        return cells[0].padding(toLength: 44) + cells.dropFirst().map { $0.padding(toLength: 13) }.joined()
    }

    /// The table again, plus the ratios the issue's goals are about.
    func summary(_ results: [(Case, Measurement)]) -> String {
        var lines = ["hv bench net (\(frames) frames per synthetic case)",
                     "  " + BenchNet.header[0].padding(toLength: 44) + BenchNet.header.dropFirst().map { $0.padding(toLength: 13) }.joined()]
        lines += results.map { "  " + line($0.0, $0.1) }
        func find(_ nic: NIC, _ direction: Direction, _ size: Int, _ burst: Int, _ backend: String) -> Measurement? {
            results.first { $0.0.nic == nic && $0.0.direction == direction && $0.0.size == size && $0.0.burst == burst && $0.0.backend == backend }?.1
        }
        for size in parsedSizes! {
            for burst in [1, 32] {
                if let s = find(.synthetic, .tx, size, burst, "null"), let e = find(.emulated, .tx, size, burst, "null") {
                    lines.append("  synthetic / emulated, TX \(size) B burst \(burst): \(formatted(s.guestPPS / e.guestPPS))x")
                }
                if let ours = find(.emulated, .tx, size, burst, "tap"), let theirs = find(.qemuE1000, .tx, size, burst, "tap") {
                    lines.append("  hv e1000 / QEMU e1000, TX \(size) B burst \(burst) on tap: \(formatted(ours.guestPPS / theirs.guestPPS))x")
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    func write(json results: [(Case, Measurement)], note: String) throws {
        func value(_ v: Double?) -> String { v.map(formatted) ?? "null" }
        let rows = results.map { (c, m) in
            "    {\"nic\": \"\(c.nic.rawValue)\", \"direction\": \"\(c.direction.rawValue)\", \"size\": \(c.size), \"burst\": \(c.burst), "
                + "\"backend\": \"\(c.backend)\", \"frames\": \(c.count), \"guest_packets_per_second\": \(value(m.guestPPS)), "
                + "\"guest_gbit_per_second\": \(value(m.gbps(c.size))), \"hv_packets_per_second\": \(value(m.hvPPS)), "
                + "\"exits_per_1000\": \(value(m.exitsPer1000)), \"interrupts_per_1000\": \(value(m.interruptsPer1000)), "
                + "\"cpu_microseconds_per_packet\": \(value(m.cpuMicrosecondsPerPacket))}"
        }
        let text = "{\n  \"note\": \"\(note)\",\n  \"results\": [\n" + rows.joined(separator: ",\n") + "\n  ]\n}\n"
        try writeBenchFile(json, text)
    }

    /// Horizontal bars of guest Gbit/s on a log scale, one per case.
    func writeChart(_ results: [(Case, Measurement)]) throws {
        let rowHeight = 22, left = 330, width = 560, top = 50
        let height = top + results.count * rowHeight + 50
        let minimum = -3.0, maximum = 2.0   // 0.001 to 100 Gbit/s
        func x(_ gbps: Double) -> Double {
            let position = (log10(max(gbps, 0.001)) - minimum) / (maximum - minimum)
            return Double(left) + min(max(position, 0), 1) * Double(width)
        }
        var svg = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(left + width + 120)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"10\" y=\"24\" font-size=\"16\">hv bench net: guest-measured throughput (Gbit/s, log scale)</text>"]
        for exponent in Int(minimum)...Int(maximum) {
            let position = x(pow(10, Double(exponent)))
            svg.append("<line x1=\"\(position)\" y1=\"\(top - 6)\" x2=\"\(position)\" y2=\"\(height - 40)\" stroke=\"#ddd\"/>")
            svg.append("<text x=\"\(position)\" y=\"\(height - 24)\" text-anchor=\"middle\">\(formatted(pow(10, Double(exponent))))</text>")
        }
        let colours: [NIC: String] = [.synthetic: "#2b7bba", .emulated: "#e08a1e", .qemuE1000: "#7f7f7f"]
        for (index, (c, m)) in results.enumerated() {
            let y = top + index * rowHeight
            let gbps = m.gbps(c.size)
            svg.append("<text x=\"\(left - 8)\" y=\"\(y + 15)\" text-anchor=\"end\">\(c.label)</text>")
            svg.append("<rect x=\"\(left)\" y=\"\(y + 3)\" width=\"\(x(gbps) - Double(left))\" height=\"\(rowHeight - 6)\" fill=\"\(colours[c.nic]!)\"/>")
            svg.append("<text x=\"\(x(gbps) + 4)\" y=\"\(y + 15)\">\(formatted(gbps))</text>")
        }
        svg.append("</svg>")
        try writeBenchFile(chart, svg.joined(separator: "\n") + "\n")
    }
}
