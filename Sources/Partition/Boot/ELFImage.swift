/// An ELF64 x86-64 kernel that boots through the PVH entry (the XEN_ELFNOTE_PHYS32_ENTRY note):
/// the guest stub, and Linux vmlinux.
public struct ELFImage: Equatable, Sendable {
    public struct Segment: Equatable, Sendable {
        /// Where in the file the bytes are.
        public var fileOffset: Int
        public var fileSize: Int
        /// Guest-physical load address and size in memory (the rest past fileSize is zeroed).
        public var physicalAddress: UInt64
        public var memorySize: UInt64
    }

    public var segments: [Segment]
    /// The 32-bit PVH entry point.
    public var pvhEntry: UInt32

    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    static let xenPhys32EntryNote: UInt32 = 18

    public static func isELF(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x7F && bytes[1] == 0x45 && bytes[2] == 0x4C && bytes[3] == 0x46
    }

    /// Parses and checks the headers; `name` is used in messages.
    public init(parsing bytes: [UInt8], name: String) throws(PartitionError) {
        guard ELFImage.isELF(bytes), bytes.count >= 64 else { throw .image("\(name): not an ELF file") }
        guard bytes[4] == 2 else { throw .image("\(name): 32-bit ELF; hv boots 64-bit (ELFCLASS64) kernels only") }
        guard bytes[5] == 1 else { throw .image("\(name): big-endian ELF; x86-64 kernels are little-endian") }
        guard bytes.le(UInt16.self, at: 18) == 62 else { throw .image("\(name): ELF for another machine (e_machine is not x86-64)") }
        guard let phoff = bytes.le(UInt64.self, at: 32), let phentsize = bytes.le(UInt16.self, at: 54),
              let phnum = bytes.le(UInt16.self, at: 56) else { throw .image("\(name): truncated ELF header") }
        guard phentsize >= 56 else { throw .image("\(name): ELF program header size \(phentsize) is too small") }
        guard phnum > 0 else { throw .image("\(name): ELF has no program headers") }
        let tableEnd = phoff.addingReportingOverflow(UInt64(phentsize) * UInt64(phnum))
        guard !tableEnd.overflow, tableEnd.partialValue <= UInt64(bytes.count) else {
            throw .image("\(name): truncated ELF (program headers end past the file)")
        }
        var segments: [Segment] = []
        var entry: UInt32?
        for i in 0..<Int(phnum) {
            let at = Int(phoff) + i * Int(phentsize)
            let type = bytes.le(UInt32.self, at: at)!
            let offset = bytes.le(UInt64.self, at: at + 8)!
            let paddr = bytes.le(UInt64.self, at: at + 24)!
            let filesz = bytes.le(UInt64.self, at: at + 32)!
            let memsz = bytes.le(UInt64.self, at: at + 40)!
            let end = offset.addingReportingOverflow(filesz)
            if type == ELFImage.ptLoad || type == ELFImage.ptNote {
                guard !end.overflow, end.partialValue <= UInt64(bytes.count) else {
                    throw .image("\(name): truncated ELF (segment \(i) ends past the file)")
                }
            }
            switch type {
            case ELFImage.ptLoad:
                guard filesz <= memsz else { throw .image("\(name): ELF segment \(i) has file size above memory size") }
                guard memsz > 0 else { continue }
                segments.append(Segment(fileOffset: Int(offset), fileSize: Int(filesz), physicalAddress: paddr, memorySize: memsz))
            case ELFImage.ptNote:
                entry = entry ?? ELFImage.findPVHEntry(bytes, from: Int(offset), count: Int(filesz))
            default:
                continue
            }
        }
        guard let entry else {
            throw .image("\(name): ELF has no PVH entry note (Xen, XEN_ELFNOTE_PHYS32_ENTRY); hv boots ELF kernels through PVH")
        }
        guard !segments.isEmpty else { throw .image("\(name): ELF has no loadable segments") }
        self.segments = segments
        self.pvhEntry = entry
    }

    /// Walks ELF notes: namesz, descsz, type, then name and desc, each padded to 4 bytes.
    static func findPVHEntry(_ bytes: [UInt8], from start: Int, count: Int) -> UInt32? {
        var at = start
        let end = start + count
        while at + 12 <= end {
            let nameSize = Int(bytes.le(UInt32.self, at: at)!)
            let descSize = Int(bytes.le(UInt32.self, at: at + 4)!)
            let type = bytes.le(UInt32.self, at: at + 8)!
            let nameAt = at + 12
            let descAt = nameAt + ((nameSize + 3) & ~3)
            let next = descAt + ((descSize + 3) & ~3)
            guard nameSize <= count, descSize <= count, next <= end else { return nil }
            let name = bytes[nameAt..<nameAt + nameSize].prefix { $0 != 0 }
            if type == xenPhys32EntryNote && Array(name) == Array("Xen".utf8) {
                if descSize == 4 { return bytes.le(UInt32.self, at: descAt) }
                if descSize == 8, let value = bytes.le(UInt64.self, at: descAt), value <= UInt32.max { return UInt32(value) }
                return nil
            }
            at = next
        }
        return nil
    }
}
