import CKVM
import Glibc
import KVM

/// Guest RAM: one memfd, mapped once into hv and registered with KVM region by region.
///
/// Every device reaches guest memory through the accessors here, which check each
/// guest-supplied address and length against the RAM map before touching a byte.
/// Pages are reserved, not touched: a 64 GiB guest costs only what it uses.
///
/// `@unchecked Sendable`: the mapping is fixed for the object's life and shared with the
/// guest by design; hv's threads copy in and out of it the way the guest's vCPUs do, and
/// protocols that need ordering (rings, later) do it with their own barriers.
public final class GuestMemory: @unchecked Sendable {
    public let map: MemoryMap
    let memfd: Int32
    let base: UnsafeMutableRawPointer
    /// map.lowRAMEnd and map.highRAMSize, kept for hostRange.
    let lowRAMEnd: UInt64
    let highRAMSize: UInt64

    public init(map: MemoryMap) throws(PartitionError) {
        self.map = map
        let fd = ckvm_memfd_create("hv-guest-ram", CKVM_MFD_CLOEXEC)
        guard fd >= 0 else { throw .hostErrno("memfd_create for guest RAM") }
        guard ftruncate(fd, off_t(map.ramSize)) == 0 else {
            let error = PartitionError.hostErrno("reserve \(formatBytes(map.ramSize)) of guest RAM (ftruncate)")
            close(fd)
            throw error
        }
        guard let mapping = mmap(nil, Int(map.ramSize), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0),
              mapping != MAP_FAILED else {
            let error = PartitionError.hostErrno("reserve \(formatBytes(map.ramSize)) of guest RAM (mmap)")
            close(fd)
            throw error
        }
        self.memfd = fd
        self.base = mapping
        lowRAMEnd = map.lowRAMEnd
        highRAMSize = map.highRAMSize
    }

    deinit {
        munmap(base, Int(map.ramSize))
        close(memfd)
    }

    /// Registers each RAM region with the VM, slot by slot.
    public func register(with vm: VirtualMachine) throws(PartitionError) {
        for (slot, region) in map.ramRegions.enumerated() {
            do {
                try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.guestAddress, size: region.size,
                                           hostAddress: base + Int(region.backingOffset))
            } catch { throw .kvm(error) }
        }
    }

    /// The host address of [address, address + length), or nil unless it lies wholly in one RAM region. On every
    /// guest-memory access, so it is plain arithmetic: RAM is [0, lowRAMEnd) at memfd offset 0 and
    /// [4 GiB, 4 GiB + highRAMSize) right after it.
    func hostRange(_ address: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
        guard length >= 0 else { return nil }
        let (end, overflow) = address.addingReportingOverflow(UInt64(length))
        guard !overflow else { return nil }
        if end <= lowRAMEnd { return base + Int(address) }
        if address >= MemoryMap.fourGiB && end - MemoryMap.fourGiB <= highRAMSize {
            return base + Int(lowRAMEnd + (address - MemoryMap.fourGiB))
        }
        return nil
    }

    /// The host address of guest-physical [address, address + count), checked like every access, for memory hv
    /// shares with the guest for a while (SynIC pages, VMBus rings). Valid as long as this GuestMemory lives; the
    /// guest may change the bytes at any time, so read what matters once and check it.
    public func hostPointer(_ address: UInt64, count: Int) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        guard let host = hostRange(address, count) else { throw GuestMemoryError(address: address, length: UInt64(max(count, 0))) }
        return host
    }

    /// Whether guest page number `page` (4 KiB pages) is RAM.
    public func isRAM(page: UInt64) -> Bool {
        page < (UInt64.max >> 12) && hostRange(page << 12, 4096) != nil
    }

    public func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(GuestMemoryError) {
        guard let host = hostRange(address, bytes.count) else {
            throw GuestMemoryError(address: address, length: UInt64(bytes.count))
        }
        UnsafeMutableRawBufferPointer(start: host, count: bytes.count).copyBytes(from: bytes)
    }

    public func read(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        guard let host = hostRange(address, count) else {
            throw GuestMemoryError(address: address, length: UInt64(max(count, 0)))
        }
        return Array(UnsafeRawBufferPointer(start: host, count: count))
    }

    public func fill(_ value: UInt8, at address: UInt64, count: Int) throws(GuestMemoryError) {
        guard let host = hostRange(address, count) else {
            throw GuestMemoryError(address: address, length: UInt64(max(count, 0)))
        }
        host.initializeMemory(as: UInt8.self, repeating: value, count: count)
    }

    /// Little-endian integer at a guest-physical address (any alignment).
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: UInt64) throws(GuestMemoryError) -> T {
        guard let host = hostRange(address, MemoryLayout<T>.size) else {
            throw GuestMemoryError(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        return T(littleEndian: host.loadUnaligned(as: T.self))
    }

    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        guard let host = hostRange(address, MemoryLayout<T>.size) else {
            throw GuestMemoryError(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        host.storeBytes(of: value.littleEndian, as: T.self)
    }
}
