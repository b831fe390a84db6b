import Glibc
import Testing
import TestSupport

/// `hv run` end to end on the real /dev/kvm: the guest stub, the guests' exit paths, and every
/// bad input through the CLI. Needs /dev/kvm and the built hv and Guests (make test builds both).
@Suite(.enabled(if: Artifacts.ready, Artifacts.reason), .serialized)
struct RunTests {
    func hv(_ arguments: [String], stdin: String = "", environment: [String: String] = [:], timeLimit: Double = 60) -> ProcessResult {
        runProcess([Artifacts.hv] + arguments, stdin: stdin, environment: environment, timeLimit: timeLimit)
    }

    static func helloLines(_ count: Int) -> String {
        (0..<count).map { "hello from vCPU \($0) (APIC ID \($0)) at CPL3\n" }.joined()
    }

    @Test(arguments: [1, 4])
    func helloPrintsOneLinePerVCPU(cpus: Int) {
        let result = hv(["run", Artifacts.hello, "--cpus", "\(cpus)", "--timeout", "30"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == Self.helloLines(cpus), "\(result)")
    }

    @Test func eightVCPUsAndLargeMemory() {
        let result = hv(["run", Artifacts.hello, "--cpus", "8", "--memory", "64G", "--timeout", "30"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == Self.helloLines(8), "\(result)")
    }

    @Test func serialToFile() throws {
        let path = temporaryFile(named: "serial.log", contents: [])
        let result = hv(["run", Artifacts.hello, "--serial", "file:\(path)", "--timeout", "30"])
        #expect(result.status == 0 && result.stdout.isEmpty, "\(result)")
        let written = runProcess(["/bin/cat", path]).stdout
        #expect(written == Self.helloLines(1))
    }

    /// Input typed after the guest waits in `hlt` reaches it only by interrupt: UART IRQ 4 →
    /// hv's IOAPIC → MSI → local APIC, and (level mode) Remote IRR cleared by the guest's EOI.
    @Test(arguments: ["edge", "level"])
    func serialInputArrivesByInterrupt(trigger: String) {
        let echo = packageRoot + "/Guests/build/echo.elf"
        let command = "(sleep 1; printf 'abc\\n'; sleep 0.5; printf 'second line\\n'; sleep 0.5; printf q) | '\(Artifacts.hv)' run '\(echo)' --cmdline irq=\(trigger) --timeout 30"
        let result = runProcess(["/bin/sh", "-c", command], timeLimit: 60)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("echo: ready (\(trigger))\necho: abc\necho: second line\necho: bye after "), "\(result)")
        let count = Int(result.stdout.split(separator: "bye after ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(count >= 3, "each burst of input needs an interrupt: \(result)")
    }

    // MARK: guest-chosen endings (32-bit PVH entry code)

    @Test func exitPortStatusBecomesHVsStatus() {
        // mov dx, 0x501; mov al, 42; out dx, al; jmp $
        let image = temporaryFile(named: "exit42.elf", contents: SyntheticELF.withEntryCode([0x66, 0xBA, 0x01, 0x05, 0xB0, 42, 0xEE, 0xEB, 0xFE]))
        let result = hv(["run", image, "--timeout", "30"])
        #expect(result.status == 42, "\(result)")
    }

    @Test func i8042ResetIsARebootRequest() {
        // mov al, 0xFE; out 0x64, al; jmp $
        let image = temporaryFile(named: "reset.elf", contents: SyntheticELF.withEntryCode([0xB0, 0xFE, 0xE6, 0x64, 0xEB, 0xFE]))
        let result = hv(["run", image, "--timeout", "30"])
        #expect(result.status == 120, "\(result)")
    }

    /// A kernel that "returns to the BIOS" to reboot lands on hv's reset vector, which pulses
    /// the i8042 reset line. (The same bytes run in 32-bit mode: mov eax, 0xFFFF0; jmp eax.)
    @Test func resetVectorRebootsThroughTheI8042() {
        let image = temporaryFile(named: "bios-reboot.elf", contents: SyntheticELF.withEntryCode([0xB8, 0xF0, 0xFF, 0x0F, 0x00, 0xFF, 0xE0]))
        let result = hv(["run", image, "--timeout", "30"])
        #expect(result.status == 120, "\(result)")
    }

    @Test func tripleFaultPrintsRegistersAndExits121() {
        // ud2 with no IDT: #UD → #DF → triple fault.
        let image = temporaryFile(named: "ud2.elf", contents: SyntheticELF.withEntryCode([0x0F, 0x0B]))
        let result = hv(["run", image, "--timeout", "30"])
        #expect(result.status == 121, "\(result)")
        #expect(result.stderr.contains("triple fault"), "\(result)")
        #expect(result.stderr.contains("rip="), "\(result)")
    }

    @Test func spinningGuestEndsAtTimeout() {
        let image = temporaryFile(named: "spin.elf", contents: SyntheticELF.withEntryCode([0xEB, 0xFE]))
        let result = hv(["run", image, "--cpus", "2", "--timeout", "1"], timeLimit: 30)
        #expect(result.status == 124, "\(result)")
        #expect(result.stderr.contains("--timeout"), "\(result)")
        // Where each vCPU was: the spinning BSP at the jmp, the AP still waiting for its SIPI.
        #expect(result.stderr.contains("vCPU 0 registers:") && result.stderr.contains("vCPU 1 registers:"), "\(result)")
        #expect(result.stderr.contains("rip=0000000000100000"), "\(result)")
    }

    /// SIGUSR2 is a report, not a stop: every vCPU thread answers with its registers, and the
    /// guest runs on to its --timeout.
    @Test func sigusr2ReportsEveryVCPUAndTheGuestRunsOn() {
        let image = temporaryFile(named: "spin.elf", contents: SyntheticELF.withEntryCode([0xEB, 0xFE]))
        let result = runProcess([Artifacts.hv, "run", image, "--cpus", "3", "--timeout", "3"], timeLimit: 30) { pid in
            usleep(700_000)
            kill(pid, SIGUSR2)
            usleep(300_000)
            kill(pid, SIGUSR2)
        }
        #expect(result.status == 124, "\(result)")
        for request in 1...2 {
            #expect(result.stderr.contains("hv: vCPU state report \(request) (SIGUSR2)"), "\(result)")
        }
        for vcpu in 0..<3 {
            // Twice from the running threads, once more at the timeout.
            let dumps = result.stderr.split(separator: "\n").filter { $0 == "vCPU \(vcpu) registers:" }.count
            #expect(dumps == 3, "vCPU \(vcpu): \(dumps) register dumps\n\(result)")
        }
        #expect(!result.stderr.contains("no answer"), "\(result)")
    }

    @Test func sigtermStopsEveryVCPU() {
        let image = temporaryFile(named: "spin.elf", contents: SyntheticELF.withEntryCode([0xEB, 0xFE]))
        let result = runProcess([Artifacts.hv, "run", image, "--cpus", "4", "--timeout", "60"], timeLimit: 30) { pid in
            usleep(500_000)
            kill(pid, SIGTERM)
        }
        #expect(result.status == 143, "\(result)")
        #expect(!result.timedOut)
    }

    @Test func rebootFlagRestartsTheGuestUntilTheTimeout() {
        let image = temporaryFile(named: "reset.elf", contents: SyntheticELF.withEntryCode([0xB0, 0xFE, 0xE6, 0x64, 0xEB, 0xFE]))
        let result = hv(["run", image, "--reboot", "--timeout", "1", "--log-level", "info"], timeLimit: 30)
        #expect(result.status == 124, "\(result)")
        #expect(result.stderr.contains("restarting (restart 2)"), "\(result)")
    }

    /// With a terminal on stdin the console is raw and Ctrl-A x quits. script(1) provides the terminal.
    @Test(.enabled(if: fileExists("/usr/bin/script"), "needs script(1) from util-linux for a pseudo-terminal"))
    func consoleEscapeQuitsFromATerminal() {
        let image = temporaryFile(named: "spin.elf", contents: SyntheticELF.withEntryCode([0xEB, 0xFE]))
        let result = runProcess(["/bin/sh", "-c", "(sleep 1; printf '\\001x') | script -q -e -c \"'\(Artifacts.hv)' run '\(image)' --timeout 20\" /dev/null"],
                                timeLimit: 30)
        #expect(result.status == 0, "\(result)")
    }

    // MARK: bad input: one clear line, a documented status

    func expectError(_ arguments: [String], status: Int32, mentioning text: String,
                     environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) {
        let result = hv(arguments, environment: environment)
        #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(text), "\(result)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error"), "\(result)", sourceLocation: sourceLocation)
    }

    @Test func missingAndUnreadableImages() {
        expectError(["run", "/nonexistent/kernel"], status: 66, mentioning: "cannot open kernel image '/nonexistent/kernel'")
        expectError(["run", "/tmp"], status: 66, mentioning: "not a regular file")
        expectError(["run", Artifacts.hello, "--initrd", "/nonexistent/initrd"], status: 66, mentioning: "cannot open initrd")
    }

    @Test func filesThatAreNotBootableKernels() {
        let text = temporaryFile(named: "notes.txt", contents: Array("just text\n".utf8))
        expectError(["run", text], status: 65, mentioning: "neither an ELF kernel nor a Linux bzImage")
        let noNote = temporaryFile(named: "nonote.elf", contents: SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: [0xF4])], pvhEntry: nil))
        expectError(["run", noNote], status: 65, mentioning: "no PVH entry note")
        let elf32 = temporaryFile(named: "elf32.elf", contents: SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: [0xF4])], pvhEntry: 0x10_0000, elfClass: 1))
        expectError(["run", elf32], status: 65, mentioning: "32-bit ELF")
        let oldBz = temporaryFile(named: "old.bzImage", contents: SyntheticBzImage.make(version: 0x0204))
        expectError(["run", oldBz], status: 65, mentioning: "too old")
        let truncated = temporaryFile(named: "cut.bzImage", contents: Array(SyntheticBzImage.make().dropLast(1000)))
        expectError(["run", truncated], status: 65, mentioning: "truncated")
    }

    @Test func kernelOrInitrdTooLargeForMemory() {
        let big = temporaryFile(named: "big.elf", contents: SyntheticELF.make(
            segments: [.init(physicalAddress: 0x100_0000, bytes: [0xF4], memorySize: 32 << 20)], pvhEntry: 0x100_0000))
        expectError(["run", big, "--memory", "16M"], status: 65, mentioning: "does not fit in guest RAM")
        let initrd = temporaryFile(named: "initrd.img", contents: [UInt8](repeating: 0, count: 17 << 20))
        expectError(["run", Artifacts.hello, "--memory", "16M", "--initrd", initrd], status: 65, mentioning: "initrd")
        let bz = temporaryFile(named: "k.bzImage", contents: SyntheticBzImage.make(cmdlineSize: 8))
        expectError(["run", bz, "--cmdline", "console=ttyS0"], status: 65, mentioning: "at most 8")
    }

    @Test func invalidMemoryAndCPUCounts() {
        expectError(["run", Artifacts.hello, "--memory", "lots"], status: 64, mentioning: "--memory 'lots' is not a size")
        expectError(["run", Artifacts.hello, "--memory", "8M"], status: 64, mentioning: "below the minimum")
        expectError(["run", Artifacts.hello, "--memory", "4T"], status: 64, mentioning: "above the maximum")
        expectError(["run", Artifacts.hello, "--cpus", "0"], status: 64, mentioning: "--cpus must be at least 1")
        expectError(["run", Artifacts.hello, "--cpus", "100000"], status: 64, mentioning: "--cpus 100000 is above the limit of")
        expectError(["run", Artifacts.hello, "--serial", "tcp:1"], status: 64, mentioning: "--serial")
    }

    @Test func memoryTheHostCannotReserve() {
        // Cap hv's address space at 2 GiB, then ask for 8 GiB of guest RAM.
        let result = runProcess(["/bin/sh", "-c", "ulimit -v 2097152; exec '\(Artifacts.hv)' run '\(Artifacts.hello)' --memory 8G"])
        #expect(result.status == 71, "\(result)")
        #expect(result.stderr.contains("reserve 8 GiB of guest RAM"), "\(result)")
    }

    @Test func missingOrWrongKVMDevice() {
        expectError(["run", Artifacts.hello], status: 69, mentioning: "no KVM on this host", environment: ["HV_KVM_DEVICE": "/nonexistent/kvm"])
        expectError(["run", Artifacts.hello], status: 69, mentioning: "KVM_GET_API_VERSION", environment: ["HV_KVM_DEVICE": "/dev/null"])
        expectError(["caps"], status: 69, mentioning: "no KVM on this host", environment: ["HV_KVM_DEVICE": "/nonexistent/kvm"])
    }

    @Test func capsReportsBackendAndCapabilities() {
        let result = hv(["caps"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("KVM API version: 12"))
        #expect(result.stdout.contains("KVM_CAP_SPLIT_IRQCHIP") && result.stdout.contains("yes"))
        #expect(result.stdout.contains("backend:"))
    }

    @Test func everyCommandHasHelp() {
        for command in [["--help"], ["run", "--help"], ["caps", "--help"], ["bench", "--help"], ["bench", "boot", "--help"]] {
            let result = hv(command)
            #expect(result.status == 0 && result.stdout.contains("USAGE"), "\(command): \(result)")
        }
    }
}

/// The same hello.elf under QEMU's microvm with -kernel: the PVH path is the standard one.
@Suite(.enabled(if: Artifacts.ready && fileExists(Artifacts.qemu), "needs qemu-system-x86_64 and the guest stub"))
struct QEMUCompatibilityTests {
    @Test func helloBootsUnderQEMU() {
        let result = runProcess([Artifacts.qemu, "-accel", "tcg", "-machine", "microvm", "-cpu", "max", "-smp", "4", "-m", "64M",
                                 "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                                 "-device", "isa-debug-exit,iobase=0x501,iosize=1", "-kernel", Artifacts.hello], timeLimit: 60)
        // isa-debug-exit turns the guest's 0 into (0 << 1) | 1.
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout == RunTests.helloLines(4), "\(result)")
    }
}

enum Artifacts {
    static let hv = getenv("HV_BINARY").map { String(cString: $0) } ?? packageRoot + "/.build/debug/hv"
    static let hello = packageRoot + "/Guests/build/hello.elf"
    static let vmbusStub = packageRoot + "/Guests/build/vmbus.elf"
    static let netStub = packageRoot + "/Guests/build/net.elf"
    /// Network tests make their own namespace (unshare --net), which needs root, and a tap, ip and ping in it.
    static let canMakeNamespaces = getuid() == 0 && fileExists("/usr/bin/unshare") && fileExists("/usr/sbin/ip")
        && fileExists("/usr/bin/ping") && access("/dev/net/tun", R_OK | W_OK) == 0
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static let ready = access("/dev/kvm", R_OK | W_OK) == 0 && fileExists(hv) && fileExists(hello)
    static let reason: Comment = "needs /dev/kvm, the hv binary (swift build) and Guests/build/hello.elf (make -C Guests)"
}
