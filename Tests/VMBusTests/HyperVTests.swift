import CKVM
import Glibc
import KVM
import Partition
import Synchronization
import TestSupport
import Testing
@testable import VMBus

/// The pieces of the Hyper-V interface that need no vCPU: the hypercall page, CPUID, reference time, SynIC.
@Suite struct HyperVTests {
    /// HypercallPage.code must be what this assembly assembles to, so the comments in it are the truth.
    @Test(.enabled(if: fileExists("/usr/bin/gcc") && fileExists("/usr/bin/objcopy"), "needs gcc and objcopy"))
    func hypercallPageAssembles() throws {
        let source = """
            .code64
            cmp $0x1005d, %ecx
            jne 1f
            mov %edx, %eax
            out %eax, $0xe4
            xor %eax, %eax
            ret
            1: in $0xe0, %eax
            ret

            """
        let path = temporaryFile(named: "page.S", contents: Array(source.utf8))
        let object = path + ".o", binary = path + ".bin"
        #expect(system("gcc -c -x assembler '\(path)' -o '\(object)' && objcopy -O binary -j .text '\(object)' '\(binary)'") == 0)
        #expect(try ImageFile.read(binary, what: "page") == HypercallPage.code)
        #expect(HypercallPage.ports.contains(HypercallPage.callPort) && HypercallPage.ports.contains(HypercallPage.signalPort + 3))
    }

    @Test func cpuidPresentsHyperVAndHidesKVM() {
        let leaves = HyperVCPUID.leaves()
        let base = leaves.first { $0.function == 0x4000_0000 }!
        let vendor = [base.ebx, base.ecx, base.edx].flatMap { le($0) }
        #expect(String(decoding: vendor, as: UTF8.self) == "Microsoft Hv")
        #expect(base.eax >= 0x4000_0005)
        #expect(leaves.first { $0.function == 0x4000_0001 }!.eax == 0x3123_7648)
        let features = leaves.first { $0.function == 0x4000_0003 }!
        // Hypercall MSRs and VP index are what Linux requires; SynIC, reference counter/TSC and frequencies are implemented.
        for bit in [1, 2, 5, 6, 9, 11] { #expect(features.eax & (1 << bit) != 0, "privilege bit \(bit)") }
        #expect(features.ebx & 1 == 0, "a child partition must not claim CreatePartitions (Linux would act as root)")
        #expect(leaves.first { $0.function == 0x4000_0004 }!.eax & (1 << 9) != 0, "AutoEOI must be deprecated on KVM's LAPIC")

        var table = CPUIDTable(entries: [
            kvm_cpuid_entry2(function: 0x4000_0000, eax: 0x4000_0001, ebx: 0x4B4D_564B, ecx: 0x564B_4D56, edx: 0x4D),
            kvm_cpuid_entry2(function: 0x4000_0001, eax: 0xFFFF, ebx: 0, ecx: 0, edx: 0),
            kvm_cpuid_entry2(function: 0x4000_0100, eax: 0, ebx: 0x4B4D_564B, ecx: 0, edx: 0),
            kvm_cpuid_entry2(function: 1, eax: 1, ebx: 0, ecx: 0, edx: 0),
        ])
        table.replaceHypervisorLeaves(with: leaves)
        #expect(table.entry(function: 0x4000_0100) == nil)
        #expect(table.entry(function: 0x4000_0000)?.ebx == 0x7263_694D)
        #expect(table.entry(function: 1) != nil)
    }

    @Test func referenceTimeCountsHundredsOfNanoseconds() throws {
        let time = try #require(ReferenceTime(tscHz: 2_500_000_000))
        // One second of TSC ticks is 10^7 units, give or take the rounding of the scale.
        let oneSecond = time.counter(atTSC: 2_500_000_000)
        #expect(oneSecond >= 9_999_999 && oneSecond <= 10_000_000)
        let oneHour = time.counter(atTSC: 2_500_000_000 * 3600)
        #expect(oneHour >= 36_000_000_000 - 3600 && oneHour <= 36_000_000_000)
        let page = time.pageHeader(sequence: 1)
        #expect(page.count == 24 && page[0] == 1)
        #expect(WireReader(page).u64(8) == time.scale)
        #expect(ReferenceTime(tscHz: 1000) == nil)
    }
}

/// SynIC message and event delivery into guest memory, with a recording interrupt line.
@Suite struct SynICTests {
    let memory: GuestMemory
    let injected = Interrupts()
    let synic: SynIC
    static let simp: UInt64 = 0x10000, siefp: UInt64 = 0x11000

    final class Interrupts: Sendable {
        let vectors = Mutex<[UInt8]>([])
        var all: [UInt8] { vectors.withLock { $0 } }
    }

    init() throws {
        memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        let injected = self.injected
        synic = SynIC(vp: 0, memory: memory) { vector in injected.vectors.withLock { $0.append(vector) } }
    }

    func slot(_ sint: Int) throws -> (type: UInt32, size: UInt8, flags: UInt8, payload: [UInt8]) {
        let bytes = try memory.read(at: Self.simp + UInt64(sint * 256), count: 256)
        let wire = WireReader(bytes)
        return (wire.u32(0), bytes[4], bytes[5], Array(bytes[16..<(16 + Int(bytes[4]))]))
    }

    func enable(sint: Int = 2, vector: UInt64 = 0xF3) {
        #expect(synic.write(HyperVMSR.messagePage, value: Self.simp | 1))
        #expect(synic.write(HyperVMSR.eventFlagsPage, value: Self.siefp | 1))
        #expect(synic.write(HyperVMSR.sint0 + UInt32(sint), value: vector))
    }

    @Test func resetStateIsMaskedAndVersionIsOne() {
        #expect(synic.read(HyperVMSR.sint0 + 2) == 1 << 16)
        #expect(synic.read(HyperVMSR.syncVersion) == 1)
        #expect(synic.read(0x4000_0099) == 0x10000)
        #expect(synic.read(0x4000_00A0) == nil)
    }

    @Test func messageWaitsForEnabledUnmaskedSINT() throws {
        #expect(synic.post(sint: 2, type: 1, payload: [1, 2, 3]))
        #expect(synic.queuedMessages(sint: 2) == 1)
        #expect(injected.all.isEmpty)
        enable()
        #expect(synic.queuedMessages(sint: 2) == 0)
        let delivered = try slot(2)
        #expect(delivered.type == 1 && delivered.size == 3 && delivered.payload == [1, 2, 3])
        #expect(injected.all == [0xF3])
    }

    @Test func busySlotSetsMessagePendingAndEOMDeliversTheNext() throws {
        enable()
        #expect(synic.post(sint: 2, type: 1, payload: [0xAA]))
        #expect(synic.post(sint: 2, type: 1, payload: [0xBB, 0xBC]))
        #expect(try slot(2).payload == [0xAA])
        #expect(try slot(2).flags & 1 == 1, "MessagePending tells the guest to write EOM")
        #expect(synic.queuedMessages(sint: 2) == 1)
        // The guest empties the slot and writes EOM, as vmbus_signal_eom does.
        try memory.write(le(UInt32(0)), at: Self.simp + 2 * 256)
        #expect(synic.write(HyperVMSR.endOfMessage, value: 0))
        #expect(try slot(2).payload == [0xBB, 0xBC])
        #expect(try slot(2).flags == 0)
        #expect(injected.all == [0xF3, 0xF3])
    }

    @Test func queueIsBounded() {
        for index in 0..<SynIC.queueLimit { #expect(synic.post(sint: 5, type: 1, payload: [UInt8(index)])) }
        #expect(!synic.post(sint: 5, type: 1, payload: [0]))
    }

    @Test func eventFlagInterruptsOnlyWhenItWasClear() throws {
        enable()
        #expect(synic.signalEvent(sint: 2, flag: 37))
        #expect(synic.signalEvent(sint: 2, flag: 37))
        let word = try memory.read(at: Self.siefp + 2 * 256 + 4, count: 4)
        #expect(WireReader(word).u32(0) == 1 << 5)
        #expect(injected.all == [0xF3])
        #expect(!synic.signalEvent(sint: 2, flag: 2048), "only 2048 flags per SINT")
    }

    @Test func hostileRegisterWritesAreRefused() {
        #expect(!synic.write(HyperVMSR.messagePage, value: (1 << 40) | 1), "a message page outside RAM")
        #expect(!synic.write(HyperVMSR.sint0, value: 5), "an unmasked SINT with a vector below 16")
        #expect(synic.write(HyperVMSR.sint0, value: 5 | 1 << 16), "a masked one may hold anything")
        #expect(!synic.write(HyperVMSR.syncVersion, value: 2))
        // Nothing delivered to a page that was refused.
        #expect(synic.read(HyperVMSR.messagePage) == 0)
    }

    @Test func enablingTheMessagePageClearsStaleSlots() throws {
        try memory.fill(0x55, at: Self.simp, count: 4096)
        enable()
        #expect(try slot(2).type == 0)
    }
}
