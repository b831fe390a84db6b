import ArgumentParser
import Devices
import Glibc
import KVM
import Logging
import Partition
import Synchronization
import VMBus
import VSP

/// `hv bench vmbus`: the guest stub against the echo device inside hv, over a real VMBus channel. The stub
/// (vmbus.elf mode=bench) sends N messages of S bytes on its outbound ring as fast as it can and reads every
/// echo back; hv's echo device drains the ring on its own thread and writes each packet back. Every run boots
/// a fresh partition in this process so hv's counters can be read directly.
struct BenchVMBus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmbus",
        abstract: "VMBus message rate and bandwidth: the guest stub against hv's echo device.",
        discussion: """
        Per message size: messages/s and bytes/s one way as the guest measures them (rdtsc; the median of \
        --runs runs with 2N messages, and their range), and per 1000 messages the user-space exits, guest → hv \
        signals (HvSignalEvent, an ioeventfd write, no exit) and interrupts hv injected. Exits and signals are \
        slopes between a run with N and one with 2N messages (medians), so the boot and set-up exits cancel \
        out. Also prints the guest's own memcpy bandwidth at 64 KiB, the reference for the large-message goal, \
        hv's copy alone, and a host pipeline that makes the echo's two copies on two threads through a \
        ring-sized buffer with no VMBus: the ceiling for two cores. Prints a table and writes JSON.
        """)

    @Option(help: "Message sizes in bytes (comma-separated), 64 to 65536.")
    var sizes: String = "64,256,1024,4096,16384,65536"

    @Option(help: "Bytes to move per run at each size (the message count is this over the size, at least 2000).")
    var bytesPerRun: Int = 256 << 20

    @Option(help: "Largest message count per run.")
    var maxCount: Int = 2_000_000

    @Option(name: .customLong("ring-kib"), help: "Each ring's data area in KiB (the stub's ring=; a multiple of 4 that holds two largest messages).")
    var ringKiB: Int = 1024

    @Option(help: "Runs with 2N messages per size; the table shows their median (this machine is noisy).")
    var runs: Int = 3

    @Option(help: "The guest stub's build folder.")
    var guests: String = "Guests/build"

    @Option(help: "Where to write the JSON results.")
    var output: String = "bench-vmbus.json"

    func validate() throws {
        guard let parsed = parsedSizes, !parsed.isEmpty, parsed.allSatisfy({ $0 >= 64 && $0 <= 65536 && $0 % 8 == 0 }) else {
            throw ValidationError("--sizes must be multiples of 8 from 64 to 65536, comma-separated")
        }
        guard ringKiB >= 4, ringKiB % 4 == 0, ringKiB <= 4096 else { throw ValidationError("--ring-kib must be a multiple of 4 up to 4096") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard bytesPerRun > 0, maxCount >= 2000 else { throw ValidationError("--bytes-per-run must be positive and --max-count at least 2000") }
    }

    var parsedSizes: [Int]? { parseIntegerList(sizes) }

    struct RunResult {
        var count: Int
        var nanoseconds: Double
        var guestSignals: Double
        var exits: Double
        var interrupts: Double
        var memcpyBytesPerSecond: Double?
    }

    func run() throws {
        let image = guests + "/vmbus.elf"
        guard access(image, R_OK) == 0 else { throw BenchError("\(image) is missing: run `make -C Guests` first") }
        var rows: [String] = []
        var json: [String] = []
        var memcpy: Double?
        print("hv bench vmbus: \(image), echo device, \(ringKiB) KiB rings; rates: the median of \(runs) runs; per 1000 messages: exits, guest signals, interrupts (slope between N and 2N)")
        let header = ["size", "messages/s", "MB/s one way", "MB/s range", "exits/1k", "signals/1k", "interrupts/1k"]
        rows.append(header.map { $0.padding(toLength: 14) }.joined(separator: " "))
        for size in parsedSizes! {
            let count = max(2000, min(maxCount, bytesPerRun / size))
            let single = try runOnce(image: image, size: size, count: count)
            let doubles = try (0..<runs).map { _ in try runOnce(image: image, size: size, count: 2 * count) }
            memcpy = memcpy ?? single.memcpyBytesPerSecond ?? doubles[0].memcpyBytesPerSecond
            // Rates from the longer runs; per-message counts from the difference between the two lengths.
            let rates = doubles.map { Double($0.count) / ($0.nanoseconds / 1e9) }
            let rate = median(rates)
            let per1000 = { (a: Double, b: [Double]) in (median(b) - a) / Double(count) * 1000 }
            let exits = per1000(single.exits, doubles.map(\.exits))
            let signals = per1000(single.guestSignals, doubles.map(\.guestSignals))
            let interrupts = per1000(single.interrupts, doubles.map(\.interrupts))
            let bytesPerSecond = rate * Double(size)
            let range = "\(Int((rates.min()! * Double(size) / 1e6).rounded()))-\(Int((rates.max()! * Double(size) / 1e6).rounded()))"
            rows.append([String(size), formatted(rate), formatted(bytesPerSecond / 1e6), range, formatted(exits),
                         formatted(signals), formatted(interrupts)].map { $0.padding(toLength: 14) }.joined(separator: " "))
            json.append("""
                    {"size": \(size), "count": \(2 * count), "runs": \(runs), "messages_per_second": \(formatted(rate)), \
                "messages_per_second_each": [\(rates.map(formatted).joined(separator: ", "))], \
                "bytes_per_second": \(formatted(bytesPerSecond)), "exits_per_1000": \(formatted(exits)), \
                "guest_signals_per_1000": \(formatted(signals)), "interrupts_per_1000": \(formatted(interrupts))}
                """)
        }
        for row in rows { print("  " + row) }
        if let memcpy { print("  guest memcpy, 64 KiB blocks at CPL3: \(formatted(memcpy / 1e6)) MB/s") }
        let hostCopy = hostRingCopyBandwidth()
        print("  hv memcpy, 64 KiB blocks from one \(ringKiB) KiB buffer to another (the echo's copy): \(formatted(hostCopy / 1e6)) MB/s")
        let pipeline = try hostPipelineBandwidth()
        print("  host pipeline, 64 KiB blocks: one thread copies each into a \(ringKiB) KiB ring, a second copies it out "
              + "(the echo's two copies on two cores, no VMBus; median of 5): \(formatted(pipeline / 1e6)) MB/s")
        let text = "{\n  \"guest_memcpy_64k_bytes_per_second\": \(memcpy.map(formatted) ?? "null"),\n"
            + "  \"host_ring_copy_64k_bytes_per_second\": \(formatted(hostCopy)),\n"
            + "  \"host_pipeline_64k_bytes_per_second\": \(formatted(pipeline)),\n  \"ring_kib\": \(ringKiB),\n  \"results\": [\n"
            + json.joined(separator: ",\n") + "\n  ]\n}\n"
        try writeBenchFile(output, text)
        print("wrote \(output)")
    }

    /// Boots the stub once with the echo device and reads what it printed and what hv counted.
    func runOnce(image: String, size: Int, count: Int) throws -> RunResult {
        var logger = Logger(label: "hv-bench")
        logger.logLevel = .warning
        let system = try KVMSystem(path: kvmDevicePath())
        let partition = try Partition(system: system, configuration: PartitionConfiguration(
            memorySize: 256 << 20, cpuCount: 1, hypervisorLeaves: HyperVCPUID.leaves(), vmbus: true), logger: logger)
        let serial = CapturedSerial()
        _ = PCPlatform.attach(to: partition, serialOutput: serial)
        let hyperv = try HyperVInterface(partition: partition)
        try partition.install(hypervisor: hyperv)
        let host = VMBusHost(partition: partition, hyperv: hyperv, devices: [EchoDevice()])
        defer { host.stop() }
        let request = BootRequest(imageName: image, image: try ImageFile.read(image, what: "guest stub"),
                                  cmdline: "mode=bench size=\(size) count=\(count) ring=\(ringKiB)")
        let boot = try KernelLoader.load(request, into: partition.memory, platform: partition.platform)
        let reason = try partition.run(boot: boot, timeout: 300)
        let text = serial.text
        guard reason == .guestExit(0), let nanoseconds = benchField("ns", in: text, line: "vmbus-bench "),
              let signals = benchField("signals", in: text, line: "vmbus-bench ")
        else { throw BenchError("vmbus.elf mode=bench size=\(size) count=\(count) stopped with \(reason):\n\(text)") }
        return RunResult(count: count, nanoseconds: nanoseconds, guestSignals: signals,
                         exits: Double(partition.control.exits.load(ordering: .relaxed)),
                         interrupts: Double(hyperv.counters.interrupts.load(ordering: .relaxed)),
                         memcpyBytesPerSecond: benchField("bytes-per-second", in: text, line: "memcpy "))
    }

    /// What one copy costs hv: 64 KiB blocks walked through a ring-sized source into a ring-sized destination, as
    /// the echo device copies from the guest's outbound ring to its inbound ring, for 100 ms.
    func hostRingCopyBandwidth() -> Double {
        let size = ringKiB << 10, block = min(64 << 10, size)
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { source.deallocate(); destination.deallocate() }
        source.initializeMemory(as: UInt8.self, repeating: 0x5A, count: size)
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        var copied = 0, offset = 0
        let start = monotonicSeconds()
        var elapsed = 0.0
        repeat {
            for _ in 0..<64 {
                destination.advanced(by: offset).copyMemory(from: source.advanced(by: offset), byteCount: block)
                offset = (offset + block) % (size - size % block)
                copied += block
            }
            elapsed = monotonicSeconds() - start
        } while elapsed < 0.1
        return Double(copied) / elapsed
    }
}

/// The echo's ceiling at 64 KiB without VMBus, KVM or the guest: a producer thread copies 64 KiB blocks into a
/// ring-sized buffer (the guest's copy into its outbound ring), a consumer thread copies each block out into a second
/// buffer (the echo device's copy), and a pair of counters is the only handshake. Both copies run at memcpy speed
/// alone; what this adds is every block moving from one core's cache to the other's.
/// @unchecked Sendable: the buffers are raw memory the two threads pass back and forth; a slot is touched by one
/// thread at a time, and the counters' release stores and acquire loads order each hand-over.
final class HostPipeline: @unchecked Sendable {
    let blockSize: Int, slots: Int
    let source, ring, destination: UnsafeMutableRawPointer
    /// Blocks the producer has written, and blocks the consumer has copied out: free-running.
    let produced = Atomic<Int>(0), consumed = Atomic<Int>(0)

    init(ringSize: Int, blockSize: Int) {
        self.blockSize = blockSize
        // As on a VMBus ring, one block's worth stays free.
        slots = max(ringSize / blockSize - 1, 1)
        source = .allocate(byteCount: blockSize, alignment: 4096)
        ring = .allocate(byteCount: ringSize, alignment: 4096)
        destination = .allocate(byteCount: ringSize, alignment: 4096)
        source.initializeMemory(as: UInt8.self, repeating: 0x5A, count: blockSize)
        ring.initializeMemory(as: UInt8.self, repeating: 0, count: ringSize)
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: ringSize)
    }

    deinit { source.deallocate(); ring.deallocate(); destination.deallocate() }

    /// Moves `blocks` blocks through the ring and returns the bytes per second.
    func run(blocks: Int) throws(PartitionError) -> Double {
        produced.store(0, ordering: .relaxed)
        consumed.store(0, ordering: .relaxed)
        let start = monotonicSeconds()
        let consumer = try Partition.startThread { self.consume(blocks: blocks) }
        for block in 0..<blocks {
            while block - consumed.load(ordering: .acquiring) >= slots {}
            ring.advanced(by: (block % slots) * blockSize).copyMemory(from: source, byteCount: blockSize)
            produced.store(block + 1, ordering: .releasing)
        }
        pthread_join(consumer, nil)
        return Double(blocks * blockSize) / (monotonicSeconds() - start)
    }

    private func consume(blocks: Int) {
        for block in 0..<blocks {
            while produced.load(ordering: .acquiring) <= block {}
            let offset = (block % slots) * blockSize
            destination.advanced(by: offset).copyMemory(from: ring.advanced(by: offset), byteCount: blockSize)
            consumed.store(block + 1, ordering: .releasing)
        }
    }
}

extension BenchVMBus {
    /// `HostPipeline` at 64 KiB over a ring of the bench's size: the median of five runs of 256 MiB each.
    func hostPipelineBandwidth() throws -> Double {
        let pipeline = HostPipeline(ringSize: ringKiB << 10, blockSize: min(64 << 10, (ringKiB << 10) / 2))
        let rates = try (0..<5).map { _ in try pipeline.run(blocks: (256 << 20) / pipeline.blockSize) }
        return median(rates)
    }
}

/// Serial output kept in memory, for parsing after the run.
final class CapturedSerial: SerialOutput {
    let bytes = Mutex<[UInt8]>([])
    func transmit(_ byte: UInt8) { bytes.withLock { $0.append(byte) } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
}
