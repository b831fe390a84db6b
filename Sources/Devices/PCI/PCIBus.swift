import Partition
import Synchronization

/// PCI bus 0 behind hv's host bridge.
///
/// The guest reaches configuration space two ways: mechanism #1 (CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at
/// 0xCFC-0xCFF, byte/word/dword) and the ECAM window the ACPI MCFG table describes (bus << 20 | device << 15 |
/// function << 12 | register). hv assigns every BAR at plug time, as firmware would, inside the bridge's
/// memory and I/O windows; the guest may size and move them, so the bus claims the whole windows on the
/// partition's buses once and routes each access by the BARs' current values and the command register's
/// decode bits. Each device's INTx pin drives an IOAPIC input from `PlatformPCI.interruptGSIs`
/// (level-triggered, active low, shared lines wired-OR).
public final class PCIBus: PortDevice {
    public static let slotCount = 32
    /// Configuration registers reachable per function (type-0 header and device-specific space).
    static let configSize = PCIConfigSpace.size

    public let ioWindow: ClosedRange<UInt16>
    public let mmioWindow: ClosedRange<UInt64>
    public let ecamBase: UInt64
    /// One bus: 1 MiB.
    public let ecamSize: UInt64 = 1 << 20

    struct Decode {
        let range: ClosedRange<UInt64>
        let io: Bool
        let device: any PCIDevice
        let bar: Int
    }

    struct State {
        var slots = [(any PCIDevice)?](repeating: nil, count: PCIBus.slotCount)
        var gsis = [UInt32?](repeating: nil, count: PCIBus.slotCount)
        var configAddress: UInt32 = 0
        var decode: [Decode] = []
        var nextMemory: UInt64
        var nextIO: UInt64
    }

    let state: Mutex<State>
    /// Each slot's INTx output and GSI; a GSI is asserted while any slot on it asserts. Its own lock, taken
    /// from inside a function's configuration lock: it never waits for `state`.
    struct Lines {
        var levels = [Bool](repeating: false, count: PCIBus.slotCount)
        var gsis = [UInt32?](repeating: nil, count: PCIBus.slotCount)
    }
    let lines = Mutex(Lines())
    let interrupts: @Sendable (_ gsi: Int, _ asserted: Bool) -> Void
    let unclaimed = Atomic<UInt64>(0)

    /// A bus with the host bridge at device 0. `interrupts` sets an IOAPIC input's level.
    public init(ioWindow: ClosedRange<UInt16> = PlatformPCI.ioWindow, mmioWindow: ClosedRange<UInt64> = PlatformPCI.mmioWindow,
                ecamBase: UInt64 = PlatformPCI.ecamBase, interrupts: @escaping @Sendable (_ gsi: Int, _ asserted: Bool) -> Void) {
        self.ioWindow = ioWindow
        self.mmioWindow = mmioWindow
        self.ecamBase = ecamBase
        self.interrupts = interrupts
        state = Mutex(State(nextMemory: mmioWindow.lowerBound, nextIO: UInt64(ioWindow.lowerBound)))
        state.withLock { $0.slots[0] = PCIHostBridge() }
        rebuildDecode()
    }

    /// Creates the bus, wires its interrupts to `partition`'s IOAPIC and claims its windows on the partition's
    /// buses. Plug devices, then hand `firmwareDescription` to the firmware tables (`PlatformDescription.pci`).
    public static func attach(to partition: Partition) -> PCIBus {
        let ioapic = partition.ioapic
        let bus = PCIBus { gsi, asserted in ioapic.setLevel(pin: gsi, asserted: asserted) }
        bus.claimWindows(in: partition)
        return bus
    }

    /// Claims the configuration ports, the ECAM window and the BAR windows on `partition`'s buses, once.
    public func claimWindows(in partition: Partition) {
        partition.attach(ports: PlatformPCI.configPorts, self)
        partition.attach(ports: ioWindow, self)
        partition.attach(mmio: mmioWindow, PCIMemoryWindow(bus: self))
        partition.attach(mmio: ecamBase...(ecamBase + ecamSize - 1), PCIECAMWindow(bus: self))
    }

    /// Plugs `device` in at `slot` (or the first free one), assigns its BARs in the windows, turns on its
    /// I/O and memory decoding as firmware does, and wires its INTx pin. Returns the slot.
    @discardableResult
    public func plug(_ device: any PCIDevice, slot requested: Int? = nil) throws(PartitionError) -> Int {
        let result = state.withLock { state -> Result<(Int, UInt32?), PartitionError> in
            let slot: Int
            if let requested {
                guard (1..<PCIBus.slotCount).contains(requested), state.slots[requested] == nil else {
                    return .failure(.configuration("PCI slot \(requested) is not free (slots 1-\(PCIBus.slotCount - 1))"))
                }
                slot = requested
            } else {
                guard let free = (1..<PCIBus.slotCount).first(where: { state.slots[$0] == nil }) else {
                    return .failure(.configuration("no free PCI slot on bus 0"))
                }
                slot = free
            }
            // Place the BARs naturally aligned, memory and I/O each from the bottom of its window.
            var memory = state.nextMemory, io = state.nextIO
            var bases: [(Int, UInt64)] = []
            for (index, bar) in device.config.bars.enumerated() {
                guard let bar else { continue }
                let window = bar.isIO ? UInt64(ioWindow.lowerBound)...UInt64(ioWindow.upperBound) : mmioWindow
                let next = bar.isIO ? io : memory
                let base = (next + bar.size - 1) & ~(bar.size - 1)
                guard base >= window.lowerBound, base + bar.size - 1 <= window.upperBound else {
                    return .failure(.configuration("PCI \(bar.isIO ? "I/O" : "memory") window is full: no room for a \(bar.size)-byte BAR"))
                }
                bases.append((index, base))
                if bar.isIO { io = base + bar.size } else { memory = base + bar.size }
            }
            state.nextMemory = memory
            state.nextIO = io
            state.slots[slot] = device
            var gsi: UInt32?
            let pin = device.config.interruptPin
            if (1...4).contains(pin) {
                let gsis = PlatformPCI.interruptGSIs
                gsi = gsis.lowerBound + UInt32((slot + Int(pin) - 2) % gsis.count)
                state.gsis[slot] = gsi
                lines.withLock { $0.gsis[slot] = gsi }
            }
            for (index, base) in bases { device.config.assign(bar: index, base: base) }
            return .success((slot, gsi))
        }
        let (slot, gsi) = try result.get()
        device.config.enableDecoding()
        if let gsi {
            device.config.connectInterrupt(line: UInt8(truncatingIfNeeded: gsi)) { [weak self] asserted in
                self?.setLine(slot: slot, gsi: gsi, asserted: asserted)
            }
        }
        rebuildDecode()
        return slot
    }

    /// The device at `slot` on bus 0.
    public func device(at slot: Int) -> (any PCIDevice)? {
        guard (0..<PCIBus.slotCount).contains(slot) else { return nil }
        return state.withLock { $0.slots[slot] }
    }

    /// What the firmware tables must say about this bus: its windows and every INTx route.
    public var firmwareDescription: PCIPlatformDescription {
        state.withLock { state in
            let routes = (0..<PCIBus.slotCount).compactMap { slot -> PCIPlatformDescription.InterruptRoute? in
                guard let device = state.slots[slot], let gsi = state.gsis[slot] else { return nil }
                return .init(slot: UInt8(slot), pin: device.config.interruptPin, gsi: gsi)
            }
            return PCIPlatformDescription(ecamBase: ecamBase, lastBus: 0, ioWindow: ioWindow, mmioWindow: mmioWindow, routes: routes)
        }
    }

    /// Accesses inside the windows that no enabled BAR or present function claimed.
    public var unclaimedAccesses: UInt64 { unclaimed.load(ordering: .relaxed) }

    // MARK: configuration space

    /// A configuration read; absent functions read all ones.
    public func configRead(bus: Int = 0, device: Int, function: Int = 0, offset: Int, size: Int) -> UInt32 {
        guard let target = self.function(bus: bus, device: device, function: function) else { return PCIBus.allOnes(size) }
        guard offset >= 0 && offset + size <= PCIBus.configSize else { return 0 }
        return target.config.read(offset: offset, size: size)
    }

    /// A configuration write; writes to absent functions are dropped.
    public func configWrite(bus: Int = 0, device: Int, function: Int = 0, offset: Int, size: Int, value: UInt32) {
        guard let target = self.function(bus: bus, device: device, function: function),
              offset >= 0 && offset + size <= PCIBus.configSize else { return }
        target.config.write(offset: offset, size: size, value: value)
        // Command and BAR writes change what the windows route.
        if offset < PCIConfigSpace.barOffset + 24 && offset + size > PCIConfigSpace.commandOffset { rebuildDecode() }
    }

    func function(bus: Int, device: Int, function: Int) -> (any PCIDevice)? {
        guard bus == 0, function == 0, (0..<PCIBus.slotCount).contains(device) else { return nil }
        return state.withLock { $0.slots[device] }
    }

    /// An access at `offset` into the ECAM window.
    public func ecamRead(offset: UInt64, size: Int) -> UInt64 {
        if size == 8 { return ecamRead(offset: offset, size: 4) | ecamRead(offset: offset + 4, size: 4) << 32 }
        guard let (device, function, register) = PCIBus.ecamDecode(offset, size: size, windowSize: ecamSize) else {
            noteUnclaimed()
            return UInt64(PCIBus.allOnes(size))
        }
        if register >= PCIBus.configSize {
            return self.function(bus: 0, device: device, function: function) == nil ? UInt64(PCIBus.allOnes(size)) : 0
        }
        return UInt64(configRead(device: device, function: function, offset: register, size: size))
    }

    public func ecamWrite(offset: UInt64, size: Int, value: UInt64) {
        if size == 8 {
            ecamWrite(offset: offset, size: 4, value: value & 0xFFFF_FFFF)
            ecamWrite(offset: offset + 4, size: 4, value: value >> 32)
            return
        }
        guard let (device, function, register) = PCIBus.ecamDecode(offset, size: size, windowSize: ecamSize) else {
            noteUnclaimed()
            return
        }
        configWrite(device: device, function: function, offset: register, size: size, value: UInt32(truncatingIfNeeded: value))
    }

    /// Device, function and register of an ECAM offset; nil for accesses that are misaligned, of an odd size,
    /// or outside the window.
    static func ecamDecode(_ offset: UInt64, size: Int, windowSize: UInt64) -> (Int, Int, Int)? {
        guard [1, 2, 4].contains(size), offset % UInt64(size) == 0, offset + UInt64(size) <= windowSize else { return nil }
        return (Int((offset >> 15) & 0x1F), Int((offset >> 12) & 0x7), Int(offset & 0xFFF))
    }

    // MARK: ports: mechanism #1 and the I/O window

    public func portRead(_ port: UInt16, size: Int) -> UInt32 {
        switch port {
        case 0xCF8...0xCFB:
            // CONFIG_ADDRESS answers dword accesses only; narrower ones belong to other (absent) registers.
            guard port == 0xCF8 && size == 4 else { return PCIBus.allOnes(size) }
            return state.withLock { $0.configAddress }
        case 0xCFC...0xCFF:
            guard let (device, function, register) = mechanism1Target(port: port) else { return PCIBus.allOnes(size) }
            return configRead(device: device, function: function, offset: register, size: min(size, 4 - Int(port - 0xCFC)))
        default:
            guard let (device, bar, offset) = route(UInt64(port), size: size, io: true) else {
                noteUnclaimed()
                return PCIBus.allOnes(size)
            }
            return UInt32(truncatingIfNeeded: device.barRead(bar, offset: offset, size: size))
        }
    }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        switch port {
        case 0xCF8...0xCFB:
            guard port == 0xCF8 && size == 4 else { return }
            // Enable bit, bus, device, function and dword register; reserved bits 30:24 and 1:0 read 0.
            state.withLock { $0.configAddress = value & 0x80FF_FFFC }
        case 0xCFC...0xCFF:
            guard let (device, function, register) = mechanism1Target(port: port) else { return }
            configWrite(device: device, function: function, offset: register, size: min(size, 4 - Int(port - 0xCFC)), value: value)
        default:
            guard let (device, bar, offset) = route(UInt64(port), size: size, io: true) else {
                noteUnclaimed()
                return
            }
            device.barWrite(bar, offset: offset, size: size, value: UInt64(value))
        }
    }

    func mechanism1Target(port: UInt16) -> (Int, Int, Int)? {
        let address = state.withLock { $0.configAddress }
        guard address & 0x8000_0000 != 0 else { return nil }
        guard (address >> 16) & 0xFF == 0 else { return nil }   // only bus 0 lies behind the bridge
        return (Int((address >> 11) & 0x1F), Int((address >> 8) & 0x7), Int(address & 0xFC) + Int(port - 0xCFC))
    }

    // MARK: the memory window

    /// An access at guest-physical `address` inside the memory window.
    public func mmioRead(address: UInt64, size: Int) -> UInt64 {
        guard let (device, bar, offset) = route(address, size: size, io: false) else {
            noteUnclaimed()
            return size >= 8 ? UInt64.max : (1 << (8 * UInt64(size))) - 1
        }
        return device.barRead(bar, offset: offset, size: size)
    }

    public func mmioWrite(address: UInt64, size: Int, value: UInt64) {
        guard let (device, bar, offset) = route(address, size: size, io: false) else {
            noteUnclaimed()
            return
        }
        device.barWrite(bar, offset: offset, size: size, value: value)
    }

    /// The enabled BAR that holds all of [address, address + size), if any.
    func route(_ address: UInt64, size: Int, io: Bool) -> (any PCIDevice, Int, UInt64)? {
        state.withLock { state in
            for entry in state.decode where entry.io == io && entry.range.contains(address) {
                let (end, overflow) = address.addingReportingOverflow(UInt64(max(size, 1) - 1))
                guard !overflow, entry.range.contains(end) else { return nil }
                return (entry.device, entry.bar, address - entry.range.lowerBound)
            }
            return nil
        }
    }

    /// Recomputes the routing table from every function's command register and BARs.
    func rebuildDecode() {
        state.withLock { state in
            var decode: [Decode] = []
            for case let device? in state.slots {
                let (command, bases) = device.config.decodeState()
                for (index, base) in bases.enumerated() {
                    guard let base, let bar = device.config.bars[index], base != 0 else { continue }
                    let enabled = bar.isIO ? command & PCIConfigSpace.commandIOSpace != 0 : command & PCIConfigSpace.commandMemorySpace != 0
                    guard enabled else { continue }
                    decode.append(Decode(range: base...(base + bar.size - 1), io: bar.isIO, device: device, bar: index))
                }
            }
            state.decode = decode
        }
    }

    // MARK: interrupts

    func setLine(slot: Int, gsi: UInt32, asserted: Bool) {
        lines.withLock { lines in
            lines.levels[slot] = asserted
            let level = (0..<PCIBus.slotCount).contains { lines.gsis[$0] == gsi && lines.levels[$0] }
            interrupts(Int(gsi), level)
        }
    }

    func noteUnclaimed() { unclaimed.wrappingAdd(1, ordering: .relaxed) }

    static func allOnes(_ size: Int) -> UInt32 {
        size >= 4 ? UInt32.max : (1 << (8 * UInt32(max(size, 0)))) - 1
    }
}

/// The bus's memory window on the partition's MMIO bus.
final class PCIMemoryWindow: MMIODevice {
    let bus: PCIBus
    init(bus: PCIBus) { self.bus = bus }
    func mmioRead(offset: UInt64, size: Int) -> UInt64 { bus.mmioRead(address: bus.mmioWindow.lowerBound + offset, size: size) }
    func mmioWrite(offset: UInt64, size: Int, value: UInt64) { bus.mmioWrite(address: bus.mmioWindow.lowerBound + offset, size: size, value: value) }
}

/// The bus's ECAM window on the partition's MMIO bus.
final class PCIECAMWindow: MMIODevice {
    let bus: PCIBus
    init(bus: PCIBus) { self.bus = bus }
    func mmioRead(offset: UInt64, size: Int) -> UInt64 { bus.ecamRead(offset: offset, size: size) }
    func mmioWrite(offset: UInt64, size: Int, value: UInt64) { bus.ecamWrite(offset: offset, size: size, value: value) }
}
