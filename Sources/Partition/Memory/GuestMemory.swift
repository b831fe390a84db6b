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

    /// The host address of [address, address + length), or nil unless it lies wholly in one RAM region.
    func hostRange(_ address: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
        guard length >= 0 else { return nil }
        for region in map.ramRegions {
            let (end, overflow) = address.addingReportingOverflow(UInt64(length))
            if !overflow && address >= region.guestAddress && end <= region.guestAddress + region.size {
                return base + Int(region.backingOffset + (address - region.guestAddress))
            }
        }
        return nil
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
