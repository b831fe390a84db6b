import CKVM

/// Why KVM_RUN returned, decoded in one place from the kvm_run page.
public enum VCPUExit {
    /// IN/OUT (or INS/OUTS with `count` > 1). `data` lies in the kvm_run page:
    /// for `.output` it holds what the guest wrote, for `.input` the device fills it.
    case io(PortIO)
    /// An access to guest-physical memory that no slot backs.
    case mmio(MMIOAccess)
    /// The guest acknowledged a level-triggered vector routed from our IOAPIC.
    case ioapicEOI(vector: UInt8)
    /// RDMSR/WRMSR of an MSR the filter sends to user space; complete it before the next KVM_RUN.
    case msr(MSRAccess)
    /// Triple fault (or an INIT the guest cannot take).
    case shutdown
    case hlt
    case failedEntry(hardwareReason: UInt64, cpu: UInt32)
    case internalError(suberror: UInt32, data: [UInt64])
    case systemEvent(type: UInt32)
    /// KVM_RUN came back because of a signal or immediate_exit.
    case interrupted
    case unknown(reason: UInt32, hardwareReason: UInt64)

    public struct PortIO {
        public enum Direction: Sendable { case input, output }
        public let direction: Direction
        public let port: UInt16
        /// Bytes per access: 1, 2 or 4.
        public let size: Int
        /// Accesses (string I/O repeats); data holds size × count bytes.
        public let count: Int
        public let data: UnsafeMutableRawBufferPointer
    }

    public struct MMIOAccess {
        public let address: UInt64
        public let isWrite: Bool
        /// 1 to 8 bytes inside the kvm_run page.
        public let data: UnsafeMutableRawBufferPointer
    }

    public struct MSRAccess {
        public let index: UInt32
        public let isWrite: Bool
        /// What the guest wrote (for a write).
        public let value: UInt64
        let run: UnsafeMutablePointer<kvm_run>

        /// The value the guest's RDMSR returns (ignored for a write).
        public func complete(value: UInt64 = 0) { ckvm_run_msr_complete(run, value, 0) }
        /// The guest takes #GP, as for an MSR that does not exist.
        public func fail() { ckvm_run_msr_complete(run, 0, 1) }
    }

    /// Names of KVM_SYSTEM_EVENT types, for messages.
    public static func systemEventName(_ type: UInt32) -> String {
        switch Int32(type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: "shutdown"
        case KVM_SYSTEM_EVENT_RESET: "reset"
        case KVM_SYSTEM_EVENT_CRASH: "crash"
        default: "type \(type)"
        }
    }

    /// Decodes the exit in a kvm_run mapping of `size` bytes. Offsets that KVM gives
    /// are still checked against the mapping, so a bad page cannot send us outside it.
    public static func decode(run pointer: UnsafeMutableRawPointer, size: Int) -> VCPUExit {
        let run = ckvm_run(pointer)!
        let reason = run.pointee.exit_reason
        switch Int32(reason) {
        case KVM_EXIT_IO:
            let width = Int(ckvm_run_io_size(run))
            let count = Int(ckvm_run_io_count(run))
            let offset = ckvm_run_io_data_offset(run)
            let length = width * count
            guard [1, 2, 4].contains(width), count >= 1, offset <= UInt64(size), length <= size - Int(offset) else {
                return .unknown(reason: reason, hardwareReason: 0)
            }
            let data = UnsafeMutableRawBufferPointer(start: pointer + Int(offset), count: length)
            let direction: PortIO.Direction = ckvm_run_io_direction(run) == UInt8(KVM_EXIT_IO_OUT) ? .output : .input
            return .io(PortIO(direction: direction, port: ckvm_run_io_port(run), size: width, count: count, data: data))
        case KVM_EXIT_MMIO:
            let length = Int(min(ckvm_run_mmio_length(run), 8))
            let data = UnsafeMutableRawBufferPointer(start: ckvm_run_mmio_data(run), count: length)
            return .mmio(MMIOAccess(address: ckvm_run_mmio_address(run), isWrite: ckvm_run_mmio_is_write(run) != 0, data: data))
        case KVM_EXIT_X86_RDMSR, KVM_EXIT_X86_WRMSR:
            return .msr(MSRAccess(index: ckvm_run_msr_index(run), isWrite: Int32(reason) == KVM_EXIT_X86_WRMSR,
                                  value: ckvm_run_msr_data(run), run: run))
        case KVM_EXIT_IOAPIC_EOI:
            return .ioapicEOI(vector: ckvm_run_eoi_vector(run))
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_HLT:
            return .hlt
        case KVM_EXIT_FAIL_ENTRY:
            return .failedEntry(hardwareReason: ckvm_run_fail_entry_reason(run), cpu: ckvm_run_fail_entry_cpu(run))
        case KVM_EXIT_INTERNAL_ERROR:
            let count = min(ckvm_run_internal_ndata(run), 16)
            return .internalError(suberror: ckvm_run_internal_suberror(run),
                                  data: (0..<count).map { ckvm_run_internal_data(run, $0) })
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: ckvm_run_system_event_type(run))
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unknown(reason: reason, hardwareReason: ckvm_run_hardware_exit_reason(run))
        }
    }
}
