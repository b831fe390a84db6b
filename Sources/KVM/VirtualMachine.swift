import CKVM
import Glibc

/// A KVM VM file descriptor: the child partition as KVM sees it.
public final class VirtualMachine: Sendable {
    public let fd: Int32
    public let system: KVMSystem

    init(fd: Int32, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    deinit { close(fd) }

    /// Registers `size` bytes at `hostAddress` as guest-physical memory at `guestAddress`.
    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64,
                                    hostAddress: UnsafeMutableRawPointer, readOnly: Bool = false) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0,
            guest_phys_addr: guestAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        _ = try retryingEINTR("KVM_SET_USER_MEMORY_REGION slot \(slot) at 0x\(String(guestAddress, radix: 16))") {
            ckvm_ioctl(fd, CKVM_SET_USER_MEMORY_REGION, &region)
        }
    }

    /// The three pages Intel VMX needs for real-mode emulation; must lie outside RAM and MMIO.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        _ = try retryingEINTR("KVM_SET_TSS_ADDR") { ckvm_ioctl_value(fd, CKVM_SET_TSS_ADDR, UInt(address)) }
    }

    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var value = address
        _ = try retryingEINTR("KVM_SET_IDENTITY_MAP_ADDR") { ckvm_ioctl(fd, CKVM_SET_IDENTITY_MAP_ADDR, &value) }
    }

    /// Split irqchip: local APICs stay in KVM, the IOAPIC (with `ioapicPins` pins) is hv's.
    public func enableSplitIRQChip(ioapicPins: UInt64) throws(KVMError) {
        try enableCapability(KVM_CAP_SPLIT_IRQCHIP, arguments: [ioapicPins])
    }

    public func enableCapability(_ capability: Int32, arguments: [UInt64]) throws(KVMError) {
        var request = kvm_enable_cap()
        request.cap = UInt32(capability)
        withUnsafeMutableBytes(of: &request.args) { raw in
            let args = raw.bindMemory(to: UInt64.self)
            for (index, value) in arguments.prefix(args.count).enumerated() { args[index] = value }
        }
        _ = try retryingEINTR("KVM_ENABLE_CAP \(capability)") { ckvm_ioctl(fd, CKVM_ENABLE_CAP, &request) }
    }

    /// Injects one MSI. Returns false when the guest blocked it (no destination accepted it).
    @discardableResult
    public func signalMSI(address: UInt64, data: UInt32) throws(KVMError) -> Bool {
        var msi = kvm_msi()
        msi.address_lo = UInt32(truncatingIfNeeded: address)
        msi.address_hi = UInt32(truncatingIfNeeded: address >> 32)
        msi.data = data
        let delivered = try retryingEINTR("KVM_SIGNAL_MSI") { ckvm_ioctl(fd, CKVM_SIGNAL_MSI, &msi) }
        return delivered > 0
    }

    /// One GSI routed as an MSI: KVM reads these to know which IOAPIC vectors are
    /// level-triggered and so need KVM_EXIT_IOAPIC_EOI.
    public struct MSIRoute: Equatable, Sendable {
        public var gsi: UInt32
        public var address: UInt64
        public var data: UInt32
        public init(gsi: UInt32, address: UInt64, data: UInt32) {
            self.gsi = gsi; self.address = address; self.data = data
        }
    }

    /// Replaces the whole GSI routing table.
    public func setGSIRouting(_ routes: [MSIRoute]) throws(KVMError) {
        try withKVMBuffer(kvm_irq_routing.self, size: Int(ckvm_irq_routing_size(UInt32(routes.count)))) { table throws(KVMError) in
            table.pointee.nr = UInt32(routes.count)
            let entries = ckvm_irq_routing_entries(table)!
            for (index, route) in routes.enumerated() {
                ckvm_irq_routing_entry_set_msi(entries + index, route.gsi, UInt32(truncatingIfNeeded: route.address),
                                               UInt32(truncatingIfNeeded: route.address >> 32), route.data)
            }
            _ = try retryingEINTR("KVM_SET_GSI_ROUTING") { ckvm_ioctl(fd, CKVM_SET_GSI_ROUTING, table) }
        }
    }

    /// MSR accesses the filter denies exit to user space (KVM_EXIT_X86_RDMSR/WRMSR) instead of raising #GP.
    public func enableUserSpaceMSRExits() throws(KVMError) {
        try enableCapability(KVM_CAP_X86_USER_SPACE_MSR, arguments: [UInt64(KVM_MSR_EXIT_REASON_FILTER)])
    }

    /// Sends every read and write of the MSRs in `ranges` to user space; all others stay with KVM.
    public func setMSRFilter(userSpaceRanges ranges: [ClosedRange<UInt32>]) throws(KVMError) {
        guard ranges.count <= 16 else { throw KVMError("KVM_X86_SET_MSR_FILTER: \(ranges.count) ranges, at most 16", errno: EINVAL) }
        var filter = kvm_msr_filter()
        filter.flags = UInt32(KVM_MSR_FILTER_DEFAULT_ALLOW)
        // A zero bit denies; the bitmaps only have to live through the ioctl.
        let bitmaps = ranges.map { [UInt8](repeating: 0, count: ($0.count + 7) / 8) }
        try withExtendedLifetime(bitmaps) { () throws(KVMError) in
            for (index, range) in ranges.enumerated() {
                bitmaps[index].withUnsafeBufferPointer { buffer in
                    ckvm_msr_filter_set_range(&filter, UInt32(index), range.lowerBound, UInt32(range.count),
                                              UnsafeMutablePointer(mutating: buffer.baseAddress!))
                }
            }
            _ = try retryingEINTR("KVM_X86_SET_MSR_FILTER") { ckvm_ioctl(fd, CKVM_X86_SET_MSR_FILTER, &filter) }
        }
    }

    /// Makes a guest write of `length` bytes equal to `value` at I/O `port` signal `eventFD` inside KVM,
    /// without an exit to user space.
    public func addIOEventFD(port: UInt16, length: UInt32, value: UInt64, eventFD: Int32) throws(KVMError) {
        var request = ioEventFD(port: port, length: length, value: value, eventFD: eventFD)
        _ = try retryingEINTR("KVM_IOEVENTFD on port 0x\(String(port, radix: 16))") { ckvm_ioctl(fd, CKVM_IOEVENTFD, &request) }
    }

    public func removeIOEventFD(port: UInt16, length: UInt32, value: UInt64, eventFD: Int32) throws(KVMError) {
        var request = ioEventFD(port: port, length: length, value: value, eventFD: eventFD)
        request.flags |= CKVM_IOEVENTFD_DEASSIGN
        _ = try retryingEINTR("KVM_IOEVENTFD (remove) on port 0x\(String(port, radix: 16))") { ckvm_ioctl(fd, CKVM_IOEVENTFD, &request) }
    }

    func ioEventFD(port: UInt16, length: UInt32, value: UInt64, eventFD: Int32) -> kvm_ioeventfd {
        var request = kvm_ioeventfd()
        request.datamatch = value
        request.addr = UInt64(port)
        request.len = length
        request.fd = eventFD
        request.flags = CKVM_IOEVENTFD_PIO_DATAMATCH
        return request
    }

    public func createVCPU(id: UInt32) throws(KVMError) -> VirtualCPU {
        let vcpuFD = try retryingEINTR("KVM_CREATE_VCPU \(id)") { ckvm_ioctl_value(fd, CKVM_CREATE_VCPU, UInt(id)) }
        let size: Int
        do { size = try system.vcpuMmapSize() } catch { close(vcpuFD); throw error }
        guard let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFD, 0), mapping != MAP_FAILED else {
            let error = KVMError.fromErrno("mmap kvm_run of vCPU \(id)")
            close(vcpuFD)
            throw error
        }
        return VirtualCPU(id: id, fd: vcpuFD, run: mapping, runSize: size)
    }
}
