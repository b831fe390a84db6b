import ArgumentParser
import Glibc
import Partition

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running VM (started with `hv run --name`) to shut down.",
        discussion: """
        Sends SIGTERM to the VM's hv, which asks the guest to shut down through the VMBus shutdown \
        integration component and stops it anyway after its grace period (`hv run --grace`). Waits for hv \
        to exit. With --force, the VM is stopped at once, without asking the guest.
        Exit status: 0 when the VM stopped, 1 when no VM has that name, 124 when --wait ran out.
        """
    )

    @Option(help: "The name given to `hv run --name`.")
    var name: String

    @Flag(help: "Stop at once instead of asking the guest.")
    var force = false

    @Option(help: "Seconds to wait for hv to exit.")
    var wait: Double = 60

    func validate() throws {
        guard VMName.isValid(name) else { throw ValidationError("--name '\(name)' is not a VM name (letters, digits, '.', '_', '-')") }
        guard wait >= 0, wait.isFinite else { throw ValidationError("--wait must be a number of seconds") }
    }

    func run() throws {
        let vm = VMName(name)
        guard let pid = vm.runningPID() else {
            printError("no running VM is named '\(name)' (looked for \(vm.path))")
            throw ExitCode(1)
        }
        // hv stops at once on its second SIGTERM.
        for _ in 0..<(force ? 2 : 1) {
            guard kill(pid, SIGTERM) == 0 else {
                printError("cannot signal hv (pid \(pid)): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
        }
        let deadline = monotonicSeconds() + wait
        while vm.runningPID() == pid {
            if monotonicSeconds() >= deadline {
                printError("VM '\(name)' (pid \(pid)) is still running after \(wait) s")
                throw ExitCode(ExitStatus.timeout)
            }
            usleep(20_000)
        }
        print("hv: VM '\(name)' stopped")
    }
}
