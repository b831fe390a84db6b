// One virtual processor's synthetic interrupt controller (vmbus-protocol.md §2): the SCONTROL/SIMP/SIEFP/SINT
// registers, a queue of messages per SINT, and delivery into the guest's message and event-flags pages, which
// are guest RAM that the guest may scribble on at any time.

import CKVM
import Partition
import Synchronization

/// A message waiting for its SIMP slot.
struct SynICMessage: Sendable {
    var type: UInt32
    var payload: [UInt8]
}

public final class SynIC: Sendable {
    public static let messageSlotSize = 256
    public static let maxPayload = 240
    /// Messages queued per SINT before HvPostMessage's sender is told to retry (INSUFFICIENT_BUFFERS).
    public static let queueLimit = 64
    static let messagePendingFlag: UInt8 = 1
    static let sintMasked: UInt64 = 1 << 16

    struct Registers {
        var control: UInt64 = 1          // enabled at reset, as OpenVMM does; Linux sets it anyway
        var messagePage: UInt64 = 0
        var eventFlagsPage: UInt64 = 0
        var sints = [UInt64](repeating: SynIC.sintMasked, count: HyperVMSR.sintCount)
        var queues = [[SynICMessage]](repeating: [], count: HyperVMSR.sintCount)
    }

    public let vp: Int
    let memory: GuestMemory
    /// Raises `vector` on this VP's local APIC.
    let inject: @Sendable (UInt8) -> Void
    let state = Mutex(Registers())

    init(vp: Int, memory: GuestMemory, inject: @escaping @Sendable (UInt8) -> Void) {
        self.vp = vp
        self.memory = memory
        self.inject = inject
    }

    // MARK: registers

    func read(_ index: UInt32) -> UInt64? {
        state.withLock { registers in
            switch index {
            case HyperVMSR.syncControl: registers.control
            case HyperVMSR.syncVersion: 1
            case HyperVMSR.messagePage: registers.messagePage
            case HyperVMSR.eventFlagsPage: registers.eventFlagsPage
            case HyperVMSR.endOfMessage: 0
            case HyperVMSR.sint0..<HyperVMSR.sint0 + UInt32(HyperVMSR.sintCount): registers.sints[Int(index - HyperVMSR.sint0)]
            default: nil
            }
        }
    }

    /// False for a write Hyper-V refuses with #GP (read-only register, bad vector, page outside RAM).
    func write(_ index: UInt32, value: UInt64) -> Bool {
        state.withLock { registers in
            switch index {
            case HyperVMSR.syncControl:
                registers.control = value & 1
            case HyperVMSR.messagePage, HyperVMSR.eventFlagsPage:
                let enabled = value & 1 != 0
                let page = value & ~0xFFF
                if enabled && !memory.isRAM(page: page >> 12) { return false }
                let old = index == HyperVMSR.messagePage ? registers.messagePage : registers.eventFlagsPage
                let newValue = page | (enabled ? 1 : 0)
                // The page becomes an overlay: clear stale RAM so it is not taken for full slots or set flags.
                if enabled && (old & 1 == 0 || old & ~0xFFF != page) { try? memory.fill(0, at: page, count: 4096) }
                if index == HyperVMSR.messagePage { registers.messagePage = newValue } else { registers.eventFlagsPage = newValue }
            case HyperVMSR.endOfMessage:
                break
            case HyperVMSR.sint0..<HyperVMSR.sint0 + UInt32(HyperVMSR.sintCount):
                let vector = value & 0xFF
                if value & SynIC.sintMasked == 0 && vector < 16 { return false }
                registers.sints[Int(index - HyperVMSR.sint0)] = value & (0xFF | SynIC.sintMasked | 1 << 17 | 1 << 18)
            default:
                return false
            }
            // Enabling or unmasking may let queued messages through; EOM asks for exactly that.
            for sint in 0..<HyperVMSR.sintCount where !registers.queues[sint].isEmpty {
                deliverQueued(sint: sint, &registers)
            }
            return true
        }
    }

    // MARK: messages

    /// Queues a message for SINT `sint` and delivers what the slot allows. False when the queue is full.
    func post(sint: Int, type: UInt32, payload: [UInt8]) -> Bool {
        precondition(payload.count <= SynIC.maxPayload && sint < HyperVMSR.sintCount)
        return state.withLock { registers in
            guard registers.queues[sint].count < SynIC.queueLimit else { return false }
            registers.queues[sint].append(SynICMessage(type: type, payload: payload))
            deliverQueued(sint: sint, &registers)
            return true
        }
    }

    func queuedMessages(sint: Int) -> Int { state.withLock { $0.queues[sint].count } }

    /// Moves queued messages into the SIMP slot while it is free; a busy slot gets MessagePending so the guest
    /// writes EOM once it has emptied the slot. Each delivered message raises the SINT's vector.
    private func deliverQueued(sint: Int, _ registers: inout Registers) {
        let sintValue = registers.sints[sint]
        guard registers.control & 1 != 0, registers.messagePage & 1 != 0, sintValue & SynIC.sintMasked == 0,
              let slot = try? memory.hostPointer((registers.messagePage & ~0xFFF) + UInt64(sint * SynIC.messageSlotSize),
                                                 count: SynIC.messageSlotSize)
        else { return }
        while let message = registers.queues[sint].first {
            if ckvm_atomic_load_u32(slot) != 0 {
                _ = ckvm_atomic_fetch_or_u8(slot + 5, SynIC.messagePendingFlag)
                // The guest may have emptied the slot before it could see the flag: look again.
                if ckvm_atomic_load_u32(slot) != 0 { return }
            }
            registers.queues[sint].removeFirst()
            slot.storeBytes(of: UInt8(message.payload.count), toByteOffset: 4, as: UInt8.self)
            slot.storeBytes(of: UInt8(0), toByteOffset: 5, as: UInt8.self)
            slot.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
            slot.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
            message.payload.withUnsafeBytes { (slot + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            // Type last: it is what marks the slot full.
            ckvm_atomic_store_u32(slot, message.type)
            inject(UInt8(truncatingIfNeeded: sintValue))
        }
    }

    // MARK: events

    /// Sets event flag `flag` of SINT `sint` and raises the SINT's vector if the flag was clear. False when the
    /// guest has no event-flags page enabled or the flag is out of range.
    @discardableResult
    func signalEvent(sint: Int, flag: Int) -> Bool {
        guard flag >= 0, flag < 2048, sint < HyperVMSR.sintCount else { return false }
        let (page, sintValue, enabled) = state.withLock { ($0.eventFlagsPage, $0.sints[sint], $0.control & 1 != 0) }
        guard page & 1 != 0,
              let word = try? memory.hostPointer((page & ~0xFFF) + UInt64(sint * 256 + flag / 32 * 4), count: 4)
        else { return false }
        let bit = UInt32(1) << UInt32(flag % 32)
        let old = ckvm_atomic_fetch_or_u32(word, bit)
        if old & bit == 0 && enabled && sintValue & SynIC.sintMasked == 0 {
            inject(UInt8(truncatingIfNeeded: sintValue))
        }
        return true
    }
}
