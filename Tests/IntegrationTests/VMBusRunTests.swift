import Glibc
import Testing
import TestSupport

/// VMBus end to end on this host's KVM (tier 1): the guest stub's VMBus client against hv, and `hv stop`.
@Suite(.enabled(if: Artifacts.ready && fileExists(Artifacts.vmbusStub), "needs /dev/kvm, hv and Guests/build/vmbus.elf"), .serialized)
struct VMBusRunTests {
    static let stub = Artifacts.vmbusStub

    func hv(_ arguments: [String], environment: [String: String] = [:], timeLimit: Double = 60) -> ProcessResult {
        runProcess([Artifacts.hv] + arguments, environment: environment, timeLimit: timeLimit)
    }

    /// The stub detects Hyper-V, connects at 5.3, lists hv's offers, opens the heartbeat channel, answers its
    /// heartbeats, closes, tears its GPADL down and unloads; hv counts the heartbeats.
    @Test func stubSessionWithHeartbeats() {
        let result = hv(["run", Self.stub, "--cmdline", "mode=hello heartbeats=3", "--log-level", "info", "--timeout", "60"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("vmbus: hyperv vendor=\"Microsoft Hv\"") }, "\(result)")
        #expect(lines.contains("vmbus: version=5.3 msg-conn-id=1"), "\(result)")
        let offers = lines.filter { $0.hasPrefix("vmbus: offer ") }
        #expect(offers.count == 2, "\(result)")
        #expect(offers.contains { $0.contains("class=57164f39-9115-4e78-ab55-382f3bd5422d") && $0.contains("name=heartbeat") }, "\(result)")
        #expect(offers.contains { $0.contains("class=0e0b6031-5213-4934-818b-38d90ced39db") && $0.contains("name=shutdown") }, "\(result)")
        #expect(lines.contains("vmbus: heartbeat negotiate framework=3.0 service=3.0"), "\(result)")
        #expect(lines.filter { $0.hasPrefix("vmbus: heartbeat seq=") }.count == 3, "\(result)")
        #expect(lines.contains("vmbus: unloaded") && lines.last == "vmbus: done", "\(result)")
        // hv's side of the same conversation.
        for count in 1...3 { #expect(result.stderr.contains("vmbus: heartbeat \(count) from guest"), "\(result)") }
        #expect(result.stderr.contains("vmbus: guest unloaded VMBus"), "\(result)")
    }

    /// Without VMBus the guest sees KVM, not Hyper-V, and the stub says so.
    @Test func noVMBusMeansNoHyperV() {
        let result = hv(["run", Self.stub, "--no-vmbus", "--timeout", "30"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stdout.contains("KVMKVMKVM"), "\(result)")
    }

    /// The echo path under back-pressure: 64 KiB messages through 128 KiB rings keep filling the inbound ring.
    @Test func benchModeEchoesEveryMessage() {
        let result = hv(["bench", "vmbus", "--sizes", "64,65536", "--bytes-per-run", "1048576", "--max-count", "2000",
                         "--ring-kib", "128", "--output", temporaryFile(named: "bench.json", contents: [])], timeLimit: 120)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("messages/s") && result.stdout.contains("guest memcpy")
                && result.stdout.contains("host pipeline"), "\(result)")
    }

    // MARK: hv stop

    /// A guest without a shutdown channel (echo.elf waits for input forever) is stopped at once: hv exits
    /// 143 (SIGTERM) and `hv stop` reports success. A second VM cannot take the same name meanwhile.
    @Test func stopByName() throws {
        let runtime = String(temporaryFile(named: "x", contents: []).dropLast(2))
        let environment = ["HV_RUNTIME_DIR": runtime]
        let name = "stop-test-\(getpid())"
        let echo = packageRoot + "/Guests/build/echo.elf"
        var stopResult: ProcessResult?
        var duplicate: ProcessResult?
        let result = runProcess([Artifacts.hv, "run", echo, "--name", name, "--timeout", "60"],
                                environment: environment, timeLimit: 90) { _ in
            // Wait for the name to be taken, then try it twice.
            for _ in 0..<200 {
                if access(runtime + "/\(name).lock", F_OK) == 0 { break }
                usleep(20_000)
            }
            usleep(300_000)
            duplicate = runProcess([Artifacts.hv, "run", echo, "--name", name, "--timeout", "5"], environment: environment)
            stopResult = runProcess([Artifacts.hv, "stop", "--name", name, "--wait", "30"], environment: environment)
        }
        #expect(duplicate?.status == 64 && duplicate?.stderr.contains("already running") == true, "\(String(describing: duplicate))")
        #expect(stopResult?.status == 0 && stopResult?.stdout.contains("stopped") == true, "\(String(describing: stopResult))")
        #expect(result.status == 143, "\(result)")
        let missing = hv(["stop", "--name", name], environment: environment)
        #expect(missing.status == 1 && missing.stderr.contains("no running VM is named"), "\(missing)")
        let invalid = hv(["run", Artifacts.hello, "--name", "../etc"])
        #expect(invalid.status == 64, "\(invalid)")
    }
}
