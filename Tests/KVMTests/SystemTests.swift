import CKVM
import Glibc
import Testing
@testable import KVM

/// Talks to the real /dev/kvm; skipped, with the reason printed, where there is none.
@Suite(.enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SystemTests {
    @Test func apiVersionAndRequiredCapabilities() throws {
        let system = try KVMSystem()
        #expect(system.apiVersion == 12)
        for status in system.capabilityReport() where status.capability.required {
            #expect(status.present, "\(status.capability.name) missing")
        }
        #expect(system.maxVCPUs >= 8)
    }

    @Test func registersRoundTrip() throws {
        let system = try KVMSystem()
        let vm = try system.createVM()
        let vcpu = try vm.createVCPU(id: 0)
        var regs = try vcpu.registers()
        regs.rax = 0x1234_5678_9ABC_DEF0
        regs.rip = 0x1000
        try vcpu.setRegisters(regs)
        let back = try vcpu.registers()
        #expect(back.rax == 0x1234_5678_9ABC_DEF0)
        #expect(back.rip == 0x1000)
    }

    @Test func supportedCPUIDHasBasicLeaves() throws {
        let table = try KVMSystem().supportedCPUID()
        #expect(table.entry(function: 0) != nil)
        #expect(table.entry(function: 1) != nil)
    }

    @Test func missingDeviceNamesThePath() {
        #expect(throws: KVMError.self) { try KVMSystem(path: "/nonexistent/kvm") }
        do { _ = try KVMSystem(path: "/nonexistent/kvm") } catch {
            #expect(error.description.contains("/nonexistent/kvm"))
            #expect(error.errno == ENOENT)
        }
    }
}

enum KVMAvailability {
    static let present = access("/dev/kvm", R_OK | W_OK) == 0
    static let reason: Comment = "needs read/write access to /dev/kvm"
}
