import ArgumentParser
import KVM

struct Caps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this host's KVM: API version, backend, and the capabilities hv uses.")

    func run() throws {
        let system: KVMSystem
        do { system = try KVMSystem(path: kvmDevicePath()) } catch {
            printError(error.description)
            throw ExitCode(ExitStatus.noKVM)
        }
        let backend = KVMBackend.detect()
        print("KVM API version: \(system.apiVersion)")
        print("backend:         \(backend.rawValue)")
        print("max vCPUs:       \(system.maxVCPUs)")
        let width = KVMCapability.used.map(\.name.count).max() ?? 0
        for status in system.capabilityReport() {
            let name = status.capability.name.padding(toLength: width)
            let answer = status.present ? "yes" : (status.capability.required ? "NO (required)" : "no")
            print("\(name)  \(answer.padding(toLength: 13))  \(status.capability.purpose)")
        }
        if backend == .pvm {
            print("note: PVM runs guest CPL3 natively and emulates CPL0; an unmodified Linux cannot boot here (see design.md §2).")
        }
        if system.capabilityReport().contains(where: { $0.capability.required && !$0.present }) {
            throw ExitCode(ExitStatus.noKVM)
        }
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
