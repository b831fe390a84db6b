import ArgumentParser
import Glibc

/// `hv bench boot`: how long hv takes to boot the guest stub, against QEMU's fastest path on
/// the same image, and what one port-I/O exit costs through hv against a minimal C KVM loop.
/// Medians of many runs, compared inside one run of the command (this machine is noisy).
struct BenchBoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot time and PIO exit cost, against QEMU (microvm) and a minimal C KVM loop.",
        discussion: """
        Boot: process start to the guest's first serial byte and to its exit, for `hv run hello.elf`
        and for `qemu-system-x86_64 -machine microvm -kernel hello.elf`. PIO: pio-bench.elf writes
        N times to port 0x502 from CPL3; per-exit cost = (median time with N - median time with 0) / N,
        for hv and for Guests/build/kvm-pio-loop. Prints a table and writes JSON.
        """)

    @Option(help: "Runs per boot measurement (the median is reported).")
    var runs: Int = 20

    @Option(help: "Runs per PIO measurement.")
    var pioRuns: Int = 5

    @Option(help: "Port writes per PIO run.")
    var pioIterations: Int = 20_000

    @Option(help: "The guest stub's build folder.")
    var guests: String = "Guests/build"

    @Option(help: "QEMU binary (skipped if missing).")
    var qemu: String = "/usr/bin/qemu-system-x86_64"

    @Option(help: "Where to write the JSON results.")
    var output: String = "bench-boot.json"

    func validate() throws {
        guard runs >= 1, pioRuns >= 1, pioIterations >= 1 else { throw ValidationError("--runs, --pio-runs and --pio-iterations must be positive") }
    }

    func run() throws {
        let hv = try selfPath()
        let hello = guests + "/hello.elf", pioGuest = guests + "/pio-bench.elf", cLoop = guests + "/kvm-pio-loop"
        for path in [hello, pioGuest, cLoop] where access(path, R_OK) != 0 {
            throw BenchError("\(path) is missing: run `make -C Guests` first")
        }
        var rows: [(name: String, value: Double, unit: String)] = []
        var json: [String: Double] = [:]
        func record(_ key: String, _ label: String, _ value: Double, _ unit: String) {
            rows.append((label, value, unit))
            json[key] = value
        }

        let hvBoot = try measureBoot([hv, "run", hello], expectStatus: 0)
        record("hv_first_byte_ms", "hv: start → first serial byte (median of \(runs))", hvBoot.firstByte * 1000, "ms")
        record("hv_exit_ms", "hv: start → guest exit (median of \(runs))", hvBoot.exit * 1000, "ms")

        // The floor on this host: the minimal C KVM loop booting the same image.
        let floorBoot = try measureBoot([cLoop, hello], expectStatus: 0)
        record("c_loop_first_byte_ms", "minimal C KVM loop: start → first serial byte", floorBoot.firstByte * 1000, "ms")
        record("c_loop_exit_ms", "minimal C KVM loop: start → guest exit", floorBoot.exit * 1000, "ms")

        var qemuAccel = "none"
        if access(qemu, X_OK) == 0 {
            let common = ["-m", "64M", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                          "-device", "isa-debug-exit,iobase=0x501,iosize=1", "-kernel", hello]
            // microvm with every optional device off is QEMU's fastest boot; KVM where it works, else TCG.
            let machine = ["-machine", "microvm,pit=off,pic=off,rtc=off,isa-serial=on,x-option-roms=off"]
            let kvm = [qemu, "-accel", "kvm", "-cpu", "host,-arch-capabilities"] + machine + common
            let tcg = [qemu, "-accel", "tcg", "-cpu", "max"] + machine + common
            let qemuArguments = (try? TimedProcess.run(kvm).status) == 1 ? kvm : tcg
            qemuAccel = qemuArguments == kvm ? "kvm" : "tcg"
            let qemuBoot = try measureBoot(qemuArguments, expectStatus: 1)
            record("qemu_first_byte_ms", "QEMU microvm (\(qemuAccel)): start → first serial byte", qemuBoot.firstByte * 1000, "ms")
            record("qemu_exit_ms", "QEMU microvm (\(qemuAccel)): start → guest exit", qemuBoot.exit * 1000, "ms")
            record("qemu_over_hv_exit_ratio", "QEMU / hv, start → exit", qemuBoot.exit / hvBoot.exit, "x")
        } else {
            print("note: \(qemu) not found; QEMU comparison skipped")
        }

        let hvExit = try measureExitCost { [hv, "run", pioGuest, "--cmdline", "iterations=\($0)"] }
        let cExit = try measureExitCost { [cLoop, pioGuest, "iterations=\($0)"] }
        record("hv_pio_exit_us", "hv: one PIO exit (CPL3 out → hv → guest)", hvExit * 1e6, "µs")
        record("c_loop_pio_exit_us", "minimal C KVM loop: one PIO exit", cExit * 1e6, "µs")
        record("hv_over_c_loop_pio_ratio", "hv / C loop, per PIO exit", hvExit / cExit, "x")

        let width = rows.map(\.name.count).max() ?? 0
        print("hv bench boot (\(runs) boot runs, \(pioRuns) PIO runs of \(pioIterations) exits; QEMU accel: \(qemuAccel))")
        for row in rows {
            print("  \(row.name.padding(toLength: width))  \(formatted(row.value)) \(row.unit)")
        }
        try writeJSON(json, extra: ["qemu_accel": qemuAccel, "runs": "\(runs)", "pio_runs": "\(pioRuns)", "pio_iterations": "\(pioIterations)"])
        print("wrote \(output)")
    }

    func measureBoot(_ arguments: [String], expectStatus: Int32) throws -> (firstByte: Double, exit: Double) {
        var first: [Double] = [], exits: [Double] = []
        for _ in 0..<runs {
            let run = try TimedProcess.run(arguments)
            guard run.status == expectStatus, let firstByte = run.firstByte else {
                throw BenchError("\(arguments.joined(separator: " ")) exited with \(run.status): \(String(decoding: run.output, as: UTF8.self))")
            }
            first.append(firstByte)
            exits.append(run.exit)
        }
        return (median(first), median(exits))
    }

    /// Seconds per exit: the slope between runs with 0 and with pioIterations port writes.
    func measureExitCost(_ command: (Int) -> [String]) throws -> Double {
        func medianTime(_ iterations: Int) throws -> Double {
            var times: [Double] = []
            for _ in 0..<pioRuns {
                let run = try TimedProcess.run(command(iterations))
                let expected = "pio-bench: \(iterations) exits"
                guard run.status == 0, String(decoding: run.output, as: UTF8.self).contains(expected) else {
                    throw BenchError("\(command(iterations).joined(separator: " ")) exited with \(run.status): \(String(decoding: run.output, as: UTF8.self))")
                }
                times.append(run.exit)
            }
            return median(times)
        }
        let base = try medianTime(0)
        let loaded = try medianTime(pioIterations)
        return (loaded - base) / Double(pioIterations)
    }

    func writeJSON(_ values: [String: Double], extra: [String: String]) throws {
        var fields = values.sorted { $0.key < $1.key }.map { "  \"\($0.key)\": \(formatted($0.value))" }
        fields += extra.sorted { $0.key < $1.key }.map { "  \"\($0.key)\": \"\($0.value)\"" }
        let text = "{\n" + fields.joined(separator: ",\n") + "\n}\n"
        try writeBenchFile(output, text)
    }

    func selfPath() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { throw BenchError("cannot find hv's own path in /proc/self/exe") }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

func formatted(_ value: Double) -> String {
    guard value.isFinite else { return "null" }
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}
