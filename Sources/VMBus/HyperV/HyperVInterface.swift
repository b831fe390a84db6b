// The Hyper-V hypervisor interface of one partition, emulated in user space: the MSRs KVM's filter sends here,
// the hypercall page and its two ports, and a SynIC per VP. VMBus sits on top (VMBusHost): it receives posted
// messages and unclaimed signals through `HyperVMessageHandler` and sends with `postMessage`/`signalEvent`.

import CKVM
import KVM
import Logging
import Partition
import Synchronization

/// Where HvPostMessage and unclaimed HvSignalEvent calls go.
public protocol HyperVMessageHandler: AnyObject, Sendable {
    /// HvPostMessage from VP `vp`: the status the guest's hypercall returns.
    func postMessage(connectionID: UInt32, messageType: UInt32, payload: [UInt8], vp: Int) -> HVStatus
    /// HvSignalEvent that no channel's ioeventfd took: the slow form, or an id nobody registered.
    func signalEvent(connectionID: UInt32, flag: UInt16, vp: Int) -> HVStatus
}

public final class HyperVInterface: HypervisorInterface {
    /// What the guest has asked of the interface, for statistics and benchmarks.
    public final class Counters: Sendable {
        /// Hypercalls that exited to hv (HvSignalEvent through an ioeventfd is not one).
        public let hypercalls = Atomic<UInt64>(0)
        public let msrAccesses = Atomic<UInt64>(0)
        /// SINT interrupts injected.
        public let interrupts = Atomic<UInt64>(0)
        /// Requests refused with #GP.
        public let refused = Atomic<UInt64>(0)
    }

    struct PartitionRegisters {
        var guestOSID: UInt64 = 0
        var hypercall: UInt64 = 0
        var referenceTSC: UInt64 = 0
        var vpAssistPages: [UInt64]
    }

    public let msrRanges = [HyperVMSR.range]
    public let ports = HypercallPage.ports
    public let synics: [SynIC]
    public let time: ReferenceTime
    let memory: GuestMemory
    let vcpus: [VirtualCPU]
    let logger: Logger
    let registers: Mutex<PartitionRegisters>
    let handlerBox = Mutex<WeakHandler>(WeakHandler())
    public let counters = Counters()

    struct WeakHandler { weak var handler: (any HyperVMessageHandler)? }

    /// `partition` must have been created with `HyperVCPUID.leaves()`; call `partition.install(hypervisor:)` next.
    public init(partition: Partition) throws(PartitionError) {
        memory = partition.memory
        vcpus = partition.vcpus
        logger = partition.logger
        let khz: UInt32
        do { khz = try partition.vcpus[0].tscKHz() } catch { throw .kvm(error) }
        guard let time = ReferenceTime(tscHz: UInt64(khz) * 1000) else {
            throw .configuration("the guest TSC runs at \(khz) kHz, too slow for Hyper-V's 100 ns reference time")
        }
        self.time = time
        registers = Mutex(PartitionRegisters(vpAssistPages: [UInt64](repeating: 0, count: partition.vcpus.count)))
        let vm = partition.vm
        let counters = self.counters
        let logger = partition.logger
        synics = (0..<partition.vcpus.count).map { vp in
            SynIC(vp: vp, memory: partition.memory) { vector in
                // Fixed delivery, edge, physical destination = this VP's APIC ID (= its index).
                let address = 0xFEE0_0000 | UInt64(vp) << 12
                do { try vm.signalMSI(address: address, data: UInt32(vector)) } catch {
                    logger.warning("SynIC interrupt to VP \(vp) failed: \(error)")
                }
                counters.interrupts.add(1, ordering: .relaxed)
            }
        }
    }

    public func setHandler(_ handler: any HyperVMessageHandler) {
        handlerBox.withLock { $0.handler = handler }
    }

    var handler: (any HyperVMessageHandler)? { handlerBox.withLock { $0.handler } }

    // MARK: host → guest

    /// Queues a message for VP `vp`'s SINT `sint`; false when its queue is full (or the VP does not exist).
    public func postMessage(vp: Int, sint: UInt8, type: UInt32 = 1, payload: [UInt8]) -> Bool {
        guard vp >= 0, vp < synics.count, payload.count <= SynIC.maxPayload else { return false }
        return synics[vp].post(sint: Int(sint & 0xF), type: type, payload: payload)
    }

    /// Sets event flag `flag` on VP `vp`'s SINT `sint`, interrupting the VP if the flag was clear.
    @discardableResult
    public func signalEvent(vp: Int, sint: UInt8, flag: Int) -> Bool {
        guard vp >= 0, vp < synics.count else { return false }
        return synics[vp].signalEvent(sint: Int(sint & 0xF), flag: flag)
    }

    public func queuedMessages(vp: Int, sint: UInt8) -> Int {
        guard vp >= 0, vp < synics.count else { return 0 }
        return synics[vp].queuedMessages(sint: Int(sint & 0xF))
    }

    // MARK: MSRs

    public func readMSR(_ index: UInt32, vp: Int) -> UInt64? {
        counters.msrAccesses.add(1, ordering: .relaxed)
        switch index {
        case HyperVMSR.guestOSID: return registers.withLock { $0.guestOSID }
        case HyperVMSR.hypercall: return registers.withLock { $0.hypercall }
        case HyperVMSR.vpIndex: return UInt64(vp)
        case HyperVMSR.timeReferenceCount:
            guard let tsc = try? vcpus[vp].readMSRs([0x10]).first else { return nil }
            return time.counter(atTSC: tsc)
        case HyperVMSR.referenceTSC: return registers.withLock { $0.referenceTSC }
        case HyperVMSR.tscFrequency: return time.tscHz
        case HyperVMSR.apicFrequency: return ReferenceTime.apicHz
        case HyperVMSR.vpAssistPage: return registers.withLock { $0.vpAssistPages[vp] }
        default:
            if let value = synics[vp].read(index) { return value }
            return refuse("RDMSR 0x\(String(index, radix: 16))", vp: vp)
        }
    }

    public func writeMSR(_ index: UInt32, value: UInt64, vp: Int) -> Bool {
        counters.msrAccesses.add(1, ordering: .relaxed)
        switch index {
        case HyperVMSR.guestOSID:
            registers.withLock { $0.guestOSID = value }
            // Hyper-V disables the hypercall page when the guest OS ID is cleared.
            if value == 0 { registers.withLock { $0.hypercall &= ~1 } }
            return true
        case HyperVMSR.hypercall:
            return writeHypercallMSR(value, vp: vp)
        case HyperVMSR.referenceTSC:
            return writeReferenceTSCMSR(value, vp: vp)
        case HyperVMSR.vpAssistPage:
            registers.withLock { $0.vpAssistPages[vp] = value }
            return true
        default:
            if synics[vp].write(index, value: value) { return true }
            return refuse("WRMSR 0x\(String(index, radix: 16)) = 0x\(String(value, radix: 16))", vp: vp) != nil
        }
    }

    /// Enabling writes hv's hypercall code into the page the guest chose; writes are ignored until the guest
    /// has set its OS ID, and after it set the lock bit.
    func writeHypercallMSR(_ value: UInt64, vp: Int) -> Bool {
        registers.withLock { registers in
            guard registers.guestOSID != 0, registers.hypercall & 2 == 0 else { return true }
            let enable = value & 1 != 0
            let page = value & ~0xFFF
            if enable {
                do { try memory.write(HypercallPage.code, at: page) } catch {
                    return refuse("hypercall page at 0x\(String(page, radix: 16)) outside RAM", vp: vp) != nil
                }
            }
            registers.hypercall = page | (value & 3)
            return true
        }
    }

    /// Enabling fills the guest's reference TSC page; a page outside RAM is refused.
    func writeReferenceTSCMSR(_ value: UInt64, vp: Int) -> Bool {
        let page = value & ~0xFFF
        if value & 1 != 0 {
            do {
                try memory.fill(0, at: page, count: 4096)
                try memory.write(time.pageHeader(sequence: 1), at: page)
            } catch {
                return refuse("reference TSC page at 0x\(String(page, radix: 16)) outside RAM", vp: vp) != nil
            }
        }
        registers.withLock { $0.referenceTSC = page | (value & 1) }
        return true
    }

    /// Logs (rate-limited) and counts something the guest asked for that Hyper-V would refuse; nil means #GP.
    func refuse(_ what: String, vp: Int) -> UInt64? {
        let count = counters.refused.add(1, ordering: .relaxed).newValue
        if RateLimit.shouldLog(count) { logger.info("Hyper-V: VP \(vp): \(what) refused (#GP), \(count) so far") }
        return nil
    }

    // MARK: hypercalls

    public func portIO(_ io: VCPUExit.PortIO, vp: Int, vcpu: VirtualCPU) {
        switch (io.port, io.direction, io.size) {
        case (HypercallPage.callPort, .input, 4):
            counters.hypercalls.add(1, ordering: .relaxed)
            let status: HVStatus
            do {
                let regs = try vcpu.registers()
                status = hypercall(control: regs.rcx, input: regs.rdx, output: regs.r8, vp: vp)
            } catch {
                logger.warning("hypercall on VP \(vp): reading the registers failed: \(error)")
                status = .invalidHypercallInput
            }
            io.data.storeBytes(of: UInt32(status.rawValue).littleEndian, as: UInt32.self)
        case (HypercallPage.signalPort, .output, 4):
            // No ioeventfd matched: a connection id no open channel has.
            let connectionID = io.data.loadUnaligned(as: UInt32.self).littleEndian
            _ = handler?.signalEvent(connectionID: connectionID, flag: 0, vp: vp)
        default:
            if io.direction == .input { io.data.initializeMemory(as: UInt8.self, repeating: 0xFF) }
        }
    }

    /// Decodes the control word and runs the call. Only the calls VMBus needs exist; rep and variable-header
    /// forms of them are refused as Hyper-V does.
    func hypercall(control: UInt64, input: UInt64, output: UInt64, vp: Int) -> HVStatus {
        let code = UInt16(truncatingIfNeeded: control)
        let fast = control & HypercallCode.fastBit != 0
        let repCount = (control >> 32) & 0xFFF
        let variableHeader = (control >> 17) & 0x3FF
        switch code {
        case HypercallCode.postMessage:
            guard !fast else { return .invalidParameter }
            guard repCount == 0, variableHeader == 0 else { return .invalidHypercallInput }
            return postMessageCall(input: input, vp: vp)
        case HypercallCode.signalEvent:
            guard repCount == 0, variableHeader == 0 else { return .invalidHypercallInput }
            var parameter = input
            if !fast {
                guard input & 7 == 0 else { return .invalidAlignment }
                guard let bytes = try? memory.read(at: input, count: 8) else { return .invalidParameter }
                parameter = WireReader(bytes).u64(0)
            }
            guard parameter >> 48 == 0 else { return .invalidParameter }
            let flag = UInt16(truncatingIfNeeded: parameter >> 32)
            return handler?.signalEvent(connectionID: UInt32(truncatingIfNeeded: parameter) & 0xFF_FFFF, flag: flag, vp: vp)
                ?? .invalidConnectionID
        default:
            return .invalidHypercallCode
        }
    }

    /// HvPostMessage's input block: connection_id, reserved, message_type, payload_size, payload[240].
    func postMessageCall(input: UInt64, vp: Int) -> HVStatus {
        guard input & 7 == 0 else { return .invalidAlignment }
        guard input & 0xFFF <= 4096 - 16, let header = try? memory.read(at: input, count: 16) else { return .invalidParameter }
        let wire = WireReader(header)
        let connectionID = wire.u32(0) & 0xFF_FFFF
        let messageType = wire.u32(8)
        let size = Int(wire.u32(12))
        guard messageType != 0, messageType < 0x8000_0000, size <= SynIC.maxPayload,
              (input & 0xFFF) + 16 + UInt64(size) <= 4096,
              let payload = try? memory.read(at: input + 16, count: size)
        else { return .invalidParameter }
        return handler?.postMessage(connectionID: connectionID, messageType: messageType, payload: payload, vp: vp)
            ?? .invalidConnectionID
    }
}
