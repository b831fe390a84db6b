import Synchronization

/// A function on hv's PCI bus: its configuration space, which the bus serves to the guest, and the
/// registers behind its BARs, which the bus routes to it by the BARs' current addresses.
public protocol PCIDevice: AnyObject, Sendable {
    var config: PCIConfigSpace { get }
    /// An access inside BAR `bar`, `offset` bytes from its base. Only called while the BAR's decode (I/O or
    /// memory space in the command register) is on.
    func barRead(_ bar: Int, offset: UInt64, size: Int) -> UInt64
    func barWrite(_ bar: Int, offset: UInt64, size: Int, value: UInt64)
}

/// What a BAR decodes. Sizes are powers of two (16 bytes or more for memory, 4 or more for I/O).
public enum PCIBAR: Sendable, Equatable {
    case memory32(size: UInt32, prefetchable: Bool = false)
    case io(size: UInt32)

    public var size: UInt64 {
        switch self {
        case .memory32(let size, _), .io(let size): UInt64(size)
        }
    }

    public var isIO: Bool {
        if case .io = self { return true }
        return false
    }

    /// The read-only low bits: memory space indicator, type and prefetchable; or I/O space indicator.
    var flags: UInt32 {
        switch self {
        case .memory32(_, let prefetchable): prefetchable ? 0x8 : 0x0
        case .io: 0x1
        }
    }

    /// The address bits the guest can write; writing all ones reads back this | flags, the size mask.
    var addressMask: UInt32 {
        switch self {
        case .memory32(let size, _): ~(size - 1) & 0xFFFF_FFF0
        case .io(let size): ~(size - 1) & 0xFFFF_FFFC
        }
    }
}

/// Identity registers of a type-0 header.
public struct PCIIdentity: Sendable, Equatable {
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var revision: UInt8
    /// Base class << 16 | subclass << 8 | programming interface (0x020000: Ethernet controller).
    public var classCode: UInt32
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16

    public init(vendorID: UInt16, deviceID: UInt16, revision: UInt8, classCode: UInt32,
                subsystemVendorID: UInt16 = 0, subsystemID: UInt16 = 0) {
        self.vendorID = vendorID; self.deviceID = deviceID; self.revision = revision; self.classCode = classCode
        self.subsystemVendorID = subsystemVendorID; self.subsystemID = subsystemID
    }
}

/// A type-0 configuration header (256 bytes; the extended space of an ECAM access reads 0) with a write mask
/// per byte, BARs that answer sizing, the command register's decode / bus-master / INTx-disable bits, and the
/// function's INTx line. Device-specific space (0x40 up) is empty: no capabilities.
public final class PCIConfigSpace: Sendable {
    public static let size = 256

    // Header offsets.
    public static let vendorOffset = 0x00
    public static let commandOffset = 0x04
    public static let statusOffset = 0x06
    public static let classOffset = 0x08
    public static let barOffset = 0x10
    public static let subsystemOffset = 0x2C
    public static let interruptLineOffset = 0x3C
    public static let interruptPinOffset = 0x3D

    // Command register bits.
    public static let commandIOSpace: UInt16 = 1 << 0
    public static let commandMemorySpace: UInt16 = 1 << 1
    public static let commandBusMaster: UInt16 = 1 << 2
    public static let commandInterruptDisable: UInt16 = 1 << 10
    /// Bits the guest may change: I/O, memory, bus master, parity error response, SERR#, INTx disable.
    static let commandWritable: UInt16 = 0x0547
    /// Status bit 3: the function asserts INTx (whether or not INTx disable lets it through).
    static let statusInterrupt: UInt16 = 1 << 3

    public let identity: PCIIdentity
    /// BAR 0-5; nil where the function has none.
    public let bars: [PCIBAR?]
    /// 0 for none, 1-4 for INTA#-INTD#.
    public let interruptPin: UInt8

    struct State {
        var bytes: [UInt8]
        /// The device's own INTx request.
        var requested = false
        /// The level the bus sees: the request unless INTx disable is set.
        var output = false
        var sink: (@Sendable (Bool) -> Void)?
    }

    let state: Mutex<State>
    let writeMask: [UInt8]

    public init(identity: PCIIdentity, bars: [PCIBAR?] = [], interruptPin: UInt8 = 0) {
        precondition(bars.count <= 6, "a type-0 header has 6 BARs")
        for bar in bars.compactMap({ $0 }) {
            precondition(bar.size.nonzeroBitCount == 1 && bar.size >= (bar.isIO ? 4 : 16), "BAR size \(bar.size) is not a power of two of the minimum or more")
        }
        self.identity = identity
        self.bars = bars + [PCIBAR?](repeating: nil, count: 6 - bars.count)
        self.interruptPin = interruptPin

        var bytes = [UInt8](repeating: 0, count: PCIConfigSpace.size)
        var mask = [UInt8](repeating: 0, count: PCIConfigSpace.size)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int, into array: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { array.replaceSubrange(offset..<offset + $0.count, with: $0) }
        }
        put(identity.vendorID, at: 0x00, into: &bytes)
        put(identity.deviceID, at: 0x02, into: &bytes)
        put(identity.revision, at: 0x08, into: &bytes)
        put(UInt16(truncatingIfNeeded: identity.classCode), at: 0x09, into: &bytes)
        put(UInt8(truncatingIfNeeded: identity.classCode >> 16), at: 0x0B, into: &bytes)
        put(identity.subsystemVendorID, at: 0x2C, into: &bytes)
        put(identity.subsystemID, at: 0x2E, into: &bytes)
        put(interruptPin, at: PCIConfigSpace.interruptPinOffset, into: &bytes)
        put(PCIConfigSpace.commandWritable, at: PCIConfigSpace.commandOffset, into: &mask)
        mask[0x0C] = 0xFF                                    // cache line size
        mask[0x0D] = 0xFF                                    // latency timer
        mask[PCIConfigSpace.interruptLineOffset] = 0xFF
        for (index, bar) in self.bars.enumerated() {
            guard let bar else { continue }
            put(bar.flags, at: PCIConfigSpace.barOffset + 4 * index, into: &bytes)
            put(bar.addressMask, at: PCIConfigSpace.barOffset + 4 * index, into: &mask)
        }
        writeMask = mask
        state = Mutex(State(bytes: bytes))
    }

    // MARK: guest side (through the bus)

    /// A configuration read of `size` (1, 2 or 4) bytes; offsets past the header read 0.
    public func read(offset: Int, size: Int) -> UInt32 {
        state.withLock { state in
            var value: UInt32 = 0
            for i in 0..<min(size, 4) {
                let at = offset + i
                guard at >= 0 && at < PCIConfigSpace.size else { continue }
                var byte = state.bytes[at]
                if at == PCIConfigSpace.statusOffset && state.requested { byte |= UInt8(PCIConfigSpace.statusInterrupt) }
                value |= UInt32(byte) << (8 * UInt32(i))
            }
            return value
        }
    }

    /// A configuration write: each byte changes only where the header lets the guest write. Only the bus writes
    /// (it re-routes the windows after command and BAR writes).
    func write(offset: Int, size: Int, value: UInt32) {
        state.withLock { state in
            for i in 0..<min(size, 4) {
                let at = offset + i
                guard at >= 0 && at < PCIConfigSpace.size else { continue }
                let byte = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
                state.bytes[at] = (state.bytes[at] & ~writeMask[at]) | (byte & writeMask[at])
            }
            updateOutput(&state)
        }
    }

    // MARK: device side

    public var command: UInt16 {
        state.withLock { PCIConfigSpace.command(of: $0) }
    }

    /// Whether the function may master the bus (DMA).
    public var busMasterEnabled: Bool { command & PCIConfigSpace.commandBusMaster != 0 }

    /// BAR `index`'s current base address, or nil when there is no such BAR.
    public func barBase(_ index: Int) -> UInt64? {
        guard (0..<6).contains(index), let bar = bars[index] else { return nil }
        return state.withLock { UInt64(PCIConfigSpace.dword(at: PCIConfigSpace.barOffset + 4 * index, of: $0) & bar.addressMask) }
    }

    /// Raises or lowers the function's INTx request. The bus sees it unless the command register's INTx
    /// disable bit is set; status bit 3 shows it either way.
    public func setInterrupt(asserted: Bool) {
        state.withLock { state in
            state.requested = asserted
            updateOutput(&state)
        }
    }

    /// The level of the INTx line as the bus sees it.
    public var interruptOutput: Bool { state.withLock { $0.output } }

    // MARK: bus side

    /// Connects the INTx line and fills the interrupt line register, as firmware would.
    func connectInterrupt(line: UInt8, _ sink: @escaping @Sendable (Bool) -> Void) {
        state.withLock { state in
            state.bytes[PCIConfigSpace.interruptLineOffset] = line
            state.sink = sink
            if state.output { sink(true) }
        }
    }

    /// What firmware does before the guest runs: place a BAR (an ordinary masked write).
    func assign(bar index: Int, base: UInt64) {
        guard let bar = bars[index] else { return }
        write(offset: PCIConfigSpace.barOffset + 4 * index, size: 4, value: UInt32(truncatingIfNeeded: base) & bar.addressMask)
    }

    /// ... and turn on I/O and memory decoding.
    func enableDecoding() {
        let command = self.command | PCIConfigSpace.commandIOSpace | PCIConfigSpace.commandMemorySpace
        write(offset: PCIConfigSpace.commandOffset, size: 2, value: UInt32(command))
    }

    /// Snapshot of what the bus routes: command and current BAR bases.
    func decodeState() -> (command: UInt16, bases: [UInt64?]) {
        state.withLock { state in
            let bases = (0..<6).map { index -> UInt64? in
                guard let bar = bars[index] else { return nil }
                return UInt64(PCIConfigSpace.dword(at: PCIConfigSpace.barOffset + 4 * index, of: state) & bar.addressMask)
            }
            return (PCIConfigSpace.command(of: state), bases)
        }
    }

    func updateOutput(_ state: inout State) {
        let output = state.requested && PCIConfigSpace.command(of: state) & PCIConfigSpace.commandInterruptDisable == 0
        guard output != state.output else { return }
        state.output = output
        state.sink?(output)
    }

    static func command(of state: State) -> UInt16 {
        UInt16(state.bytes[commandOffset]) | UInt16(state.bytes[commandOffset + 1]) << 8
    }

    static func dword(at offset: Int, of state: State) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(state.bytes[offset + $1]) << (8 * UInt32($1)) }
    }
}
