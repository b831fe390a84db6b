import CKVM
import Glibc
import KVM
import Logging
import Partition
import Synchronization
import TestSupport
import Testing
@testable import VMBus

let kvmReady = access("/dev/kvm", R_OK | W_OK) == 0

/// The MSR and hypercall side of the interface on a real partition (no vCPU runs): what a guest's RDMSR,
/// WRMSR and hypercall-page calls get.
@Suite(.enabled(if: kvmReady, "needs /dev/kvm"))
struct HyperVInterfaceTests {
    let partition: Partition
    let hyperv: HyperVInterface
    let handler = RecordingHandler()

    final class RecordingHandler: HyperVMessageHandler {
        let posted = Mutex<[(UInt32, UInt32, [UInt8])]>([])
        func postMessage(connectionID: UInt32, messageType: UInt32, payload: [UInt8], vp: Int) -> HVStatus {
            posted.withLock { $0.append((connectionID, messageType, payload)) }
            return .success
        }
        func signalEvent(connectionID: UInt32, flag: UInt16, vp: Int) -> HVStatus { .invalidConnectionID }
    }

    init() throws {
        let system = try KVMSystem()
        partition = try Partition(system: system,
                                  configuration: PartitionConfiguration(memorySize: 32 << 20, cpuCount: 2,
                                                                        hypervisorLeaves: HyperVCPUID.leaves(), vmbus: true),
                                  logger: Logger(label: "test"))
        hyperv = try HyperVInterface(partition: partition)
        try partition.install(hypervisor: hyperv)
        hyperv.setHandler(handler)
    }

    @Test func hypercallPageNeedsTheGuestOSIDFirst() throws {
        let page: UInt64 = 0x20000
        #expect(hyperv.writeMSR(HyperVMSR.hypercall, value: page | 1, vp: 0))
        #expect(hyperv.readMSR(HyperVMSR.hypercall, vp: 0) == 0, "ignored while GUEST_OS_ID is 0")
        #expect(hyperv.writeMSR(HyperVMSR.guestOSID, value: 0x8100_0000_0000_0000, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.hypercall, value: page | 1, vp: 0))
        #expect(hyperv.readMSR(HyperVMSR.hypercall, vp: 0) == page | 1)
        #expect(try partition.memory.read(at: page, count: HypercallPage.code.count) == HypercallPage.code)
        #expect(!hyperv.writeMSR(HyperVMSR.hypercall, value: (1 << 45) | 1, vp: 0), "a page outside RAM is #GP")
    }

    @Test func vpIndexFrequenciesAndReferenceTime() throws {
        #expect(hyperv.readMSR(HyperVMSR.vpIndex, vp: 1) == 1)
        #expect(!hyperv.writeMSR(HyperVMSR.vpIndex, value: 5, vp: 1), "VP_INDEX is read-only")
        let tscHz = try #require(hyperv.readMSR(HyperVMSR.tscFrequency, vp: 0))
        #expect(tscHz == UInt64(try partition.vcpus[0].tscKHz()) * 1000)
        #expect(hyperv.readMSR(HyperVMSR.apicFrequency, vp: 0) == 1_000_000_000)
        let first = try #require(hyperv.readMSR(HyperVMSR.timeReferenceCount, vp: 0))
        usleep(20_000)
        let second = try #require(hyperv.readMSR(HyperVMSR.timeReferenceCount, vp: 0))
        // 20 ms is 200 000 units; allow for a slow, noisy host.
        #expect(second > first && second - first >= 150_000 && second - first < 20_000_000, "\(first) → \(second)")
        #expect(hyperv.writeMSR(HyperVMSR.referenceTSC, value: 0x30000 | 1, vp: 0))
        let header = WireReader(try partition.memory.read(at: 0x30000, count: 24))
        #expect(header.u32(0) == 1 && header.u64(8) == hyperv.time.scale)
        #expect(hyperv.readMSR(0x4000_0040, vp: 0) == nil, "an MSR hv does not implement is #GP")
        #expect(hyperv.counters.refused.load(ordering: .relaxed) >= 1)
    }

    /// The hypercall decoder, fed the registers a guest's call would leave.
    @Test func postMessageHypercall() throws {
        let input: UInt64 = 0x40000
        var block = le(UInt32(4)) + le(UInt32(0)) + le(UInt32(1)) + le(UInt32(8)) + [1, 2, 3, 4, 5, 6, 7, 8]
        try partition.memory.write(block, at: input)
        #expect(hyperv.hypercall(control: 0x5C, input: input, output: 0, vp: 0) == .success)
        let posted = handler.posted.withLock { $0 }
        #expect(posted.count == 1 && posted[0].0 == 4 && posted[0].1 == 1 && posted[0].2 == [1, 2, 3, 4, 5, 6, 7, 8])

        #expect(hyperv.hypercall(control: 0x5C, input: input + 4, output: 0, vp: 0) == .invalidAlignment)
        #expect(hyperv.hypercall(control: 0x5C | HypercallCode.fastBit, input: input, output: 0, vp: 0) == .invalidParameter)
        #expect(hyperv.hypercall(control: 0x5C | 1 << 32, input: input, output: 0, vp: 0) == .invalidHypercallInput, "rep count")
        #expect(hyperv.hypercall(control: 0x5C, input: 1 << 44, output: 0, vp: 0) == .invalidParameter, "input outside RAM")
        #expect(hyperv.hypercall(control: 0x5C, input: 0x40FF8, output: 0, vp: 0) == .invalidParameter, "header across a page")
        block[12] = 241
        try partition.memory.write(block, at: input)
        #expect(hyperv.hypercall(control: 0x5C, input: input, output: 0, vp: 0) == .invalidParameter, "payload over 240 bytes")
        block[12] = 8; block[8] = 0
        try partition.memory.write(block, at: input)
        #expect(hyperv.hypercall(control: 0x5C, input: input, output: 0, vp: 0) == .invalidParameter, "message type 0")
        #expect(hyperv.hypercall(control: 0x1234, input: 0, output: 0, vp: 0) == .invalidHypercallCode)
        #expect(hyperv.hypercall(control: 0x5D | HypercallCode.fastBit, input: 99, output: 0, vp: 0) == .invalidConnectionID)
        #expect(hyperv.hypercall(control: 0x5D | HypercallCode.fastBit, input: 1 << 50, output: 0, vp: 0) == .invalidParameter)
        #expect(handler.posted.withLock { $0.count } == 1, "no refused call reached the handler")
    }
}
