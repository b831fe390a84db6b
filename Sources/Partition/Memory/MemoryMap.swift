/// Where things are in guest-physical address space.
///
/// RAM starts at 0 and runs up to the 32-bit MMIO hole; what does not fit below the hole
/// continues at 4 GiB. The hole holds the IOAPIC, the local APICs and, later, PCI BARs.
/// Fixed addresses for boot structures live here too, so loaders and tests agree on them.
public struct MemoryMap: Equatable, Sendable {
    public static let minimumRAM: UInt64 = 16 << 20
    /// Generous upper bound on what hv accepts; the host may still refuse to reserve it.
    public static let maximumRAM: UInt64 = 1 << 40

    /// Start of the 32-bit MMIO hole: the last GiB below 4 GiB.
    public static let mmioHoleStart: UInt64 = 0xC000_0000
    public static let fourGiB: UInt64 = 0x1_0000_0000

    public static let ioapicBase: UInt64 = 0xFEC0_0000
    public static let localAPICBase: UInt64 = 0xFEE0_0000
    /// KVM_SET_TSS_ADDR's three pages and the identity-map page, inside the hole and
    /// clear of every device (the same place Firecracker and kvmtool use).
    public static let kvmTSSAddress: UInt64 = 0xFFFB_D000
    public static let kvmIdentityMapAddress: UInt64 = 0xFFFB_C000

    // Low-memory layout used by the loaders (below 1 MiB).
    /// The extended BIOS data area: reserved, holds the MP table.
    public static let ebdaStart: UInt64 = 0x9_FC00
    public static let legacyHoleStart: UInt64 = 0xA_0000
    /// hv's "firmware" area, the top 128 KiB below 1 MiB as on a PC, reserved in e820: ACPI
    /// tables at its start (where the legacy RSDP scan looks), the boot trampoline at 0xF0000.
    public static let firmwareAreaStart: UInt64 = 0xE_0000
    public static let acpiTables: UInt64 = 0xE_0000
    public static let firmwareBase: UInt64 = 0xF_0000
    /// The x86 reset vector, F000:FFF0.
    public static let resetVector: UInt64 = 0xF_FFF0
    public static let highMemoryStart: UInt64 = 0x10_0000
    /// PVH start info, its module list and memory map.
    public static let pvhStartInfo: UInt64 = 0x6000
    public static let pvhModuleList: UInt64 = 0x6040
    public static let pvhMemoryMap: UInt64 = 0x6100
    /// Linux boot_params (the "zero page").
    public static let linuxBootParams: UInt64 = 0x7000
    /// Boot stack for the 64-bit Linux entry; grows down from here.
    public static let bootStackTop: UInt64 = 0x8FF0
    /// Identity page tables for the 64-bit Linux entry: PML4, PDPT, then four PDs (4 GiB).
    public static let pageTableBase: UInt64 = 0x9000
    /// The kernel command line, up to `maximumCmdline` bytes with its NUL.
    public static let cmdline: UInt64 = 0x2_0000
    public static let maximumCmdline: UInt64 = 0x1_0000

    public let ramSize: UInt64

    public init(ramSize: UInt64) throws(PartitionError) {
        guard ramSize >= MemoryMap.minimumRAM else {
            throw .configuration("memory size \(formatBytes(ramSize)) is below the minimum of \(formatBytes(MemoryMap.minimumRAM))")
        }
        guard ramSize <= MemoryMap.maximumRAM else {
            throw .configuration("memory size \(formatBytes(ramSize)) is above the maximum of \(formatBytes(MemoryMap.maximumRAM))")
        }
        guard ramSize % 4096 == 0 else {
            throw .configuration("memory size \(ramSize) bytes is not a multiple of 4 KiB")
        }
        self.ramSize = ramSize
    }

    /// RAM below the MMIO hole: [0, lowRAMEnd).
    public var lowRAMEnd: UInt64 { min(ramSize, MemoryMap.mmioHoleStart) }
    /// RAM above 4 GiB: [4 GiB, highRAMEnd), empty when all RAM fits below the hole.
    public var highRAMSize: UInt64 { ramSize - lowRAMEnd }
    public var highRAMEnd: UInt64 { MemoryMap.fourGiB + highRAMSize }

    /// The RAM regions as (guest-physical start, size, offset into the backing memfd).
    public var ramRegions: [(guestAddress: UInt64, size: UInt64, backingOffset: UInt64)] {
        var regions: [(UInt64, UInt64, UInt64)] = [(0, lowRAMEnd, 0)]
        if highRAMSize > 0 { regions.append((MemoryMap.fourGiB, highRAMSize, lowRAMEnd)) }
        return regions
    }

    /// The map a guest is told about (e820 for Linux, the PVH memory map), sorted.
    public var e820: [E820Entry] {
        var entries = [
            E820Entry(address: 0, size: MemoryMap.ebdaStart, type: .ram),
            E820Entry(address: MemoryMap.ebdaStart, size: MemoryMap.legacyHoleStart - MemoryMap.ebdaStart, type: .reserved),
            E820Entry(address: MemoryMap.firmwareAreaStart, size: MemoryMap.highMemoryStart - MemoryMap.firmwareAreaStart, type: .reserved),
            E820Entry(address: MemoryMap.highMemoryStart, size: lowRAMEnd - MemoryMap.highMemoryStart, type: .ram),
        ]
        if highRAMSize > 0 {
            entries.append(E820Entry(address: MemoryMap.fourGiB, size: highRAMSize, type: .ram))
        }
        return entries
    }

    /// Whether [address, address + length) lies inside one RAM region.
    public func containsRAM(_ address: UInt64, length: UInt64) -> Bool {
        for region in ramRegions {
            let (end, overflow) = address.addingReportingOverflow(length)
            if !overflow && address >= region.guestAddress && end <= region.guestAddress + region.size { return true }
        }
        return false
    }
}

public struct E820Entry: Equatable, Sendable {
    public enum Kind: UInt32, Sendable {
        case ram = 1, reserved = 2, acpiReclaimable = 3, acpiNVS = 4
    }
    public var address: UInt64
    public var size: UInt64
    public var type: Kind
    public init(address: UInt64, size: UInt64, type: Kind) {
        self.address = address; self.size = size; self.type = type
    }
}

/// "64 MiB", "3 GiB", or bytes when not a whole unit; for messages.
public func formatBytes(_ bytes: UInt64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes >= (1 << shift) && bytes % (1 << shift) == 0 {
        return "\(bytes >> UInt64(shift)) \(unit)"
    }
    return "\(bytes) bytes"
}
