/// What to boot: the kernel image's bytes, an optional initrd, and the command line.
public struct BootRequest: Sendable {
    public var imageName: String
    public var image: [UInt8]
    public var initrd: [UInt8]?
    public var cmdline: String

    public init(imageName: String, image: [UInt8], initrd: [UInt8]? = nil, cmdline: String = "") {
        self.imageName = imageName; self.image = image; self.initrd = initrd; self.cmdline = cmdline
    }
}


/// Places a kernel in guest memory the way its boot protocol asks and says how to enter it.
/// ELF images boot through PVH; bzImages through the Linux 64-bit boot protocol.
public enum KernelLoader {
    /// Where a bzImage's protected-mode kernel is copied.
    static let bzImageLoadAddress: UInt64 = MemoryMap.highMemoryStart
    static let pageSize: UInt64 = 4096

    /// Loads the kernel, writes the firmware tables (ACPI, MP) for `platform`, and returns
    /// the trampoline that enters the kernel.
    public static func load(_ request: BootRequest, into memory: GuestMemory,
                            platform: PlatformDescription) throws(PartitionError) -> BootTrampoline {
        let acpi = ACPITables(platform: platform, base: MemoryMap.acpiTables)
        try copy(acpi.bytes, to: MemoryMap.acpiTables, memory, what: "ACPI tables")
        let mp = MPTable(platform: platform, base: MemoryMap.ebdaStart)
        try copy(mp.bytes, to: MemoryMap.ebdaStart, memory, what: "MP table")
        let e820 = memoryMap(memory.map, platform: platform)
        let entry: BootTrampoline
        if ELFImage.isELF(request.image) {
            entry = try loadPVH(ELFImage(parsing: request.image, name: request.imageName), request, memory, e820: e820)
        } else if BzImage.isBzImage(request.image) {
            entry = try loadLinux(BzImage(parsing: request.image, name: request.imageName), request, memory, e820: e820)
        } else {
            throw .image("\(request.imageName): neither an ELF kernel nor a Linux bzImage")
        }
        try copy(entry.bytes, to: MemoryMap.firmwareBase, memory, what: "boot trampoline")
        try copy(resetVector, to: MemoryMap.resetVector, memory, what: "reset vector")
        return entry
    }

    /// The memory map the kernel is told about: RAM and the firmware areas, and the PCI ECAM window when there is
    /// one (Linux uses ECAM only if it is reserved in e820 or by a motherboard resource).
    static func memoryMap(_ map: MemoryMap, platform: PlatformDescription) -> [E820Entry] {
        var entries = map.e820
        if let pci = platform.pci { entries.append(E820Entry(address: pci.ecamBase, size: pci.ecamSize, type: .reserved)) }
        return entries.sorted { $0.address < $1.address }
    }

    /// What runs at F000:FFF0 when a kernel "returns to the BIOS" to reboot (Linux does, as
    /// BOOT_BIOS, on hardware-reduced ACPI without EFI): pulse the reset line through the
    /// i8042, as a BIOS would. `mov al, 0xFE; out 0x64, al; hlt; jmp back to hlt`.
    static let resetVector: [UInt8] = [0xB0, 0xFE, 0xE6, 0x64, 0xF4, 0xEB, 0xFD]

    // MARK: PVH

    static func loadPVH(_ elf: ELFImage, _ request: BootRequest, _ memory: GuestMemory,
                        e820: [E820Entry]) throws(PartitionError) -> BootTrampoline {
        let map = memory.map
        var kernelEnd: UInt64 = 0
        for segment in elf.segments {
            let end = segment.physicalAddress.addingReportingOverflow(segment.memorySize)
            guard segment.physicalAddress >= MemoryMap.highMemoryStart, !end.overflow,
                  map.containsRAM(segment.physicalAddress, length: segment.memorySize) else {
                throw .image("\(request.imageName): segment at 0x\(String(segment.physicalAddress, radix: 16)) (\(segment.memorySize) bytes) does not fit in guest RAM (1 MiB to 0x\(String(map.lowRAMEnd, radix: 16)) with \(formatBytes(map.ramSize)))")
            }
            try copy(request.image[segment.fileOffset..<segment.fileOffset + segment.fileSize], to: segment.physicalAddress, memory, what: "kernel")
            try zero(segment.physicalAddress + UInt64(segment.fileSize), count: segment.memorySize - UInt64(segment.fileSize), memory)
            kernelEnd = max(kernelEnd, end.partialValue)
        }
        let cmdline = try placeCmdline(request.cmdline, limit: MemoryMap.maximumCmdline - 1, memory)

        var moduleCount: UInt32 = 0
        if let initrd = request.initrd {
            let address = try placeInitrd(initrd, above: kernelEnd, below: map.lowRAMEnd, memory, limitName: "the top of low memory")
            // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.
            try store([address, UInt64(initrd.count), 0, 0], at: MemoryMap.pvhModuleList, memory)
            moduleCount = 1
        }
        for (i, entry) in e820.enumerated() {
            let at = MemoryMap.pvhMemoryMap + UInt64(i * 24)
            try store([entry.address, entry.size], at: at, memory)
            try store32([entry.type.rawValue, 0], at: at + 16, memory)
        }
        // hvm_start_info, version 1 (with the memory map).
        let info = MemoryMap.pvhStartInfo
        try zero(info, count: 56, memory)
        try store32([0x336E_C578, 1, 0, moduleCount], at: info, memory)
        try store([moduleCount > 0 ? MemoryMap.pvhModuleList : 0, cmdline, MemoryMap.acpiTables, MemoryMap.pvhMemoryMap], at: info + 16, memory)
        try store32([UInt32(e820.count), 0], at: info + 48, memory)
        return BootTrampoline(mode: .pvh, entry: UInt64(elf.pvhEntry), bootInfo: info)
    }

    // MARK: Linux bzImage

    static func loadLinux(_ kernel: BzImage, _ request: BootRequest, _ memory: GuestMemory,
                          e820: [E820Entry]) throws(PartitionError) -> BootTrampoline {
        let map = memory.map
        // A relocatable kernel decompresses itself at its preferred address; either way it
        // needs init_size bytes from there.
        let runAddress = max(bzImageLoadAddress, kernel.preferredAddress)
        let needed = runAddress + UInt64(kernel.initSize)
        guard UInt64(kernel.payloadSize) + bzImageLoadAddress <= map.lowRAMEnd, needed <= map.lowRAMEnd else {
            throw .image("\(request.imageName): kernel needs memory up to 0x\(String(needed, radix: 16)) but guest RAM below 4 GiB ends at 0x\(String(map.lowRAMEnd, radix: 16)) (\(formatBytes(map.ramSize))); use a larger --memory")
        }
        try copy(request.image[kernel.payloadOffset...], to: bzImageLoadAddress, memory, what: "kernel")

        let cmdlineAddress = try placeCmdline(request.cmdline, limit: UInt64(kernel.cmdlineSize), memory)

        let params = MemoryMap.linuxBootParams
        try zero(params, count: 4096, memory)
        try copy(kernel.setupHeader, to: params + UInt64(BzImage.setupSectorsOffset), memory, what: "setup header")
        try memory.storeChecked(UInt16(0xFFFF), at: params + 0x1FA)           // vid_mode: normal
        try memory.storeChecked(UInt8(0xFF), at: params + 0x210)              // type_of_loader: undefined
        try memory.storeChecked(kernel.loadFlags | 0x01, at: params + 0x211)  // LOADED_HIGH
        try memory.storeChecked(UInt32(cmdlineAddress), at: params + 0x228)   // cmd_line_ptr
        try memory.storeChecked(MemoryMap.acpiTables, at: params + 0x070)     // acpi_rsdp_addr (protocol 2.14)
        if let initrd = request.initrd {
            // initrd_addr_max is the highest address the initrd's last byte may have.
            let limit = min(UInt64(kernel.initrdAddressMax) + 1, map.lowRAMEnd)
            let address = try placeInitrd(initrd, above: needed, below: limit, memory,
                                          limitName: "initrd_addr_max (0x\(String(kernel.initrdAddressMax, radix: 16)))")
            try memory.storeChecked(UInt32(address), at: params + 0x218)      // ramdisk_image
            try memory.storeChecked(UInt32(initrd.count), at: params + 0x21C) // ramdisk_size
        }
        try memory.storeChecked(UInt8(e820.count), at: params + 0x1E8)        // e820_entries
        for (i, entry) in e820.enumerated() {
            let at = params + 0x2D0 + UInt64(i * 20)                           // e820_table
            try store([entry.address, entry.size], at: at, memory)
            try store32([entry.type.rawValue], at: at + 16, memory)
        }
        try writeIdentityPageTables(memory)
        return BootTrampoline(mode: .linux64, entry: bzImageLoadAddress + 0x200, bootInfo: params,
                              pageTableRoot: MemoryMap.pageTableBase, stack: MemoryMap.bootStackTop)
    }

    /// PML4 → PDPT → four page directories of 2 MiB pages: the first 4 GiB, identity mapped.
    static func writeIdentityPageTables(_ memory: GuestMemory) throws(PartitionError) {
        let pml4 = MemoryMap.pageTableBase
        let pdpt = pml4 + pageSize
        let directories = pdpt + pageSize
        try zero(pml4, count: 6 * pageSize, memory)
        try store([pdpt | 0x3], at: pml4, memory)
        for gib in 0..<UInt64(4) {
            let directory = directories + gib * pageSize
            try store([directory | 0x3], at: pdpt + gib * 8, memory)
            try store((0..<UInt64(512)).map { ((gib << 30) | ($0 << 21)) | 0x83 }, at: directory, memory)
        }
    }

    // MARK: helpers

    static func placeCmdline(_ cmdline: String, limit: UInt64, _ memory: GuestMemory) throws(PartitionError) -> UInt64 {
        let bytes = Array(cmdline.utf8)
        guard !bytes.contains(0) else { throw .image("the command line contains a NUL byte") }
        guard UInt64(bytes.count) <= limit else {
            throw .image("the command line is \(bytes.count) bytes; the kernel accepts at most \(limit)")
        }
        try copy(bytes + [0], to: MemoryMap.cmdline, memory, what: "command line")
        return MemoryMap.cmdline
    }

    /// Puts the initrd as high as it can go below `limit`, page aligned, above `floor`.
    static func placeInitrd(_ initrd: [UInt8], above floor: UInt64, below limit: UInt64, _ memory: GuestMemory,
                            limitName: String) throws(PartitionError) -> UInt64 {
        let size = UInt64(initrd.count)
        guard size < limit, (limit - size) & ~(pageSize - 1) >= floor else {
            throw .image("the initrd (\(size) bytes) does not fit between the kernel's end (0x\(String(floor, radix: 16))) and \(limitName); use a larger --memory or a smaller initrd")
        }
        let address = (limit - size) & ~(pageSize - 1)
        try copy(initrd, to: address, memory, what: "initrd")
        return address
    }

    static func copy(_ bytes: some Collection<UInt8>, to address: UInt64, _ memory: GuestMemory, what: String) throws(PartitionError) {
        do { try memory.write(bytes, at: address) } catch {
            throw .image("the \(what) (\(bytes.count) bytes at 0x\(String(address, radix: 16))) does not fit in guest RAM")
        }
    }

    static func zero(_ address: UInt64, count: UInt64, _ memory: GuestMemory) throws(PartitionError) {
        do { try memory.fill(0, at: address, count: Int(count)) } catch {
            throw .image("range 0x\(String(address, radix: 16)) + \(count) does not fit in guest RAM")
        }
    }

    static func store(_ values: [UInt64], at address: UInt64, _ memory: GuestMemory) throws(PartitionError) {
        for (i, value) in values.enumerated() { try memory.storeChecked(value, at: address + UInt64(i * 8)) }
    }

    static func store32(_ values: [UInt32], at address: UInt64, _ memory: GuestMemory) throws(PartitionError) {
        for (i, value) in values.enumerated() { try memory.storeChecked(value, at: address + UInt64(i * 4)) }
    }
}

extension GuestMemory {
    /// `store` for loaders, whose addresses are hv's own: a miss is an image that does not fit.
    func storeChecked<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(PartitionError) {
        do { try store(value, at: address) } catch {
            throw .image("boot structure at 0x\(String(address, radix: 16)) is outside guest RAM")
        }
    }
}
