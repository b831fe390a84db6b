import Glibc
import Testing
import TestSupport
@testable import Devices
@testable import Partition

/// The ACPI and MP tables of a platform with hv's PCI bus, generated from what is plugged in.
@Suite struct PCIFirmwareTests {
    /// A bus with an e1000 in slot 1 and a second function in slot 3, as the firmware would see it.
    static func pciDescription() throws -> PCIPlatformDescription {
        let bus = PCIBus { _, _ in }
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        try bus.plug(try E1000(mac: E1000Rig.mac, backend: FakeNetworkBackend(), memory: memory))
        try bus.plug(ProbeDevice(), slot: 3)
        return bus.firmwareDescription
    }

    static func tables(_ pci: PCIPlatformDescription?) -> [String: [UInt8]] {
        let acpi = ACPITables(platform: .init(cpuCount: 2, ioapicID: 2, pci: pci), base: MemoryMap.acpiTables)
        let blob = acpi.bytes
        func word<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        func table(_ address: UInt64) -> [UInt8] {
            let at = Int(address - acpi.base)
            return Array(blob[at..<at + Int(word(UInt32.self, blob, at: at + 4))])
        }
        let xsdt = table(word(UInt64.self, blob, at: 24))
        var found = ["XSDT": xsdt]
        for i in 0..<(xsdt.count - 36) / 8 {
            let entry = table(word(UInt64.self, xsdt, at: 36 + 8 * i))
            found[String(decoding: entry[0..<4], as: UTF8.self)] = entry
        }
        found["DSDT"] = table(word(UInt64.self, found["FACP"]!, at: 140))
        return found
    }

    @Test func descriptionFollowsWhatIsPlugged() throws {
        let pci = try Self.pciDescription()
        #expect(pci.ecamBase == 0xE000_0000 && pci.ecamSize == 1 << 20 && pci.lastBus == 0)
        #expect(pci.mmioWindow == 0xC000_0000...0xDFFF_FFFF)
        #expect(pci.ioWindow == 0xC000...0xCFFF)
        #expect(pci.routes == [.init(slot: 1, pin: 1, gsi: 16), .init(slot: 3, pin: 1, gsi: 18)])
        // Clear of the IOAPIC, the local APICs and KVM's TSS pages; inside the MMIO hole.
        let ecam = pci.ecamBase...(pci.ecamBase + pci.ecamSize - 1)
        for fixed in [MemoryMap.ioapicBase, MemoryMap.localAPICBase, MemoryMap.kvmTSSAddress, MemoryMap.kvmIdentityMapAddress] {
            #expect(!ecam.contains(fixed) && !pci.mmioWindow.contains(fixed))
        }
        #expect(pci.mmioWindow.lowerBound >= MemoryMap.mmioHoleStart && !pci.mmioWindow.overlaps(ecam))
    }

    @Test func mcfgDescribesTheECAMWindow() throws {
        let found = Self.tables(try Self.pciDescription())
        #expect(Set(found.keys) == ["XSDT", "FACP", "APIC", "DSDT", "MCFG"])
        for (name, table) in found { #expect(table.reduce(0, &+) == 0, "\(name) checksum") }
        let mcfg = found["MCFG"]!
        #expect(mcfg.count == 36 + 8 + 16)
        #expect(Array(mcfg[44..<52]) == leBytes(UInt64(0xE000_0000)))
        #expect(Array(mcfg[52..<56]) == [0, 0, 0, 0])                      // segment 0, buses 0-0
        // Without PCI the tables are what they were: no MCFG, no PCI0.
        let plain = Self.tables(nil)
        #expect(plain["MCFG"] == nil)
        #expect(!plain["DSDT"]!.contains(subsequence: Array("PCI0".utf8)))
    }

    @Test func amlResourceDescriptors() {
        #expect(AML.wordBusNumber(0...0) == [0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00])
        #expect(AML.wordIO(0xC000...0xCFFF) == [0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03, 0, 0, 0x00, 0xC0, 0xFF, 0xCF, 0, 0, 0x00, 0x10])
        let memory = AML.dwordMemory(0xC000_0000...0xDFFF_FFFF)
        #expect(memory.count == 26 && Array(memory[0..<6]) == [0x87, 0x17, 0x00, 0x00, 0x0C, 0x01])
        #expect(Array(memory[22..<26]) == leBytes(UInt32(0x2000_0000)))
        #expect(AML.memory32Fixed(base: 0xE000_0000, length: 0x10_0000) == [0x86, 0x09, 0x00, 0x01, 0, 0, 0, 0xE0, 0, 0, 0x10, 0])
    }

    /// ACPICA's disassembler reads the DSDT and MCFG without an error and shows the host bridge, its windows
    /// and the interrupt routing.
    @Test(.enabled(if: fileExists("/usr/bin/iasl"), "needs iasl (Debian package acpica-tools)"))
    func acpicaDisassemblesDSDTAndMCFG() throws {
        let found = Self.tables(try Self.pciDescription())
        for name in ["DSDT", "MCFG"] {
            let path = temporaryFile(named: "\(name.lowercased()).dat", contents: found[name]!)
            let result = runProcess(["/usr/bin/iasl", "-d", path])
            #expect(result.status == 0, "\(name): \(result)")
            #expect(!result.stdout.contains("Error") && !result.stderr.contains("Error"), "\(name): \(result)")
            let listing = runProcess(["/bin/cat", String(path.dropLast(4)) + ".dsl"]).stdout
            if name == "DSDT" {
                #expect(listing.contains("Device (PCI0)"), "\(listing)")
                #expect(listing.contains("EisaId (\"PNP0A08\")") && listing.contains("EisaId (\"PNP0A03\")"), "\(listing)")
                #expect(listing.contains("Name (_SEG, Zero)") && listing.contains("Name (_BBN, Zero)"), "\(listing)")
                #expect(listing.contains("WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,"), "\(listing)")
                #expect(listing.contains("IO (Decode16,") && listing.contains("0x0CF8"), "\(listing)")
                #expect(listing.contains("WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,"), "\(listing)")
                #expect(listing.contains("0xC000") && listing.contains("0xCFFF"), "\(listing)")
                #expect(listing.contains("DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,"), "\(listing)")
                #expect(listing.contains("0xC0000000") && listing.contains("0xDFFFFFFF"), "\(listing)")
                #expect(listing.contains("Name (_PRT, Package"), "\(listing)")
                #expect(listing.contains("0x0001FFFF") && listing.contains("0x0003FFFF"), "\(listing)")
                #expect(listing.contains("0x10") && listing.contains("0x12"), "\(listing)")
                #expect(listing.contains("PNP0C02") && listing.contains("Memory32Fixed (ReadWrite,") && listing.contains("0xE0000000"), "\(listing)")
                #expect(listing.contains("Device (COM1)"), "\(listing)")
            } else {
                #expect(listing.contains("[MCFG]") || listing.contains("\"MCFG\""), "\(listing)")
                #expect(listing.contains("00000000E0000000"), "\(listing)")
            }
        }
    }

    @Test func mpTableHasThePCIBusAndAnEntryPerDevice() throws {
        let pci = try Self.pciDescription()
        let mp = MPTable(platform: .init(cpuCount: 2, ioapicID: 2, pci: pci), base: MemoryMap.ebdaStart).bytes
        #expect(mp[0..<16].reduce(0, &+) == 0)
        let config = Array(mp[16...])
        #expect(config.reduce(0, &+) == 0)
        #expect(Int(config[4]) | Int(config[5]) << 8 == config.count)
        let entryCount = Int(config[34]) | Int(config[35]) << 8
        #expect(entryCount == 2 + 2 + 1 + 16 + 2 + 2)
        var offset = 44
        var buses: [UInt8: String] = [:]
        var interrupts: [[UInt8]] = []
        for _ in 0..<entryCount {
            let type = config[offset]
            let length = type == 0 ? 20 : 8
            if type == 1 { buses[config[offset + 1]] = String(decoding: config[offset + 2..<offset + 8], as: UTF8.self) }
            if type == 3 { interrupts.append(Array(config[offset..<offset + 8])) }
            offset += length
        }
        #expect(offset == config.count)
        #expect(buses == [0: "PCI   ", 1: "ISA   "])
        // ISA IRQs on bus 1, conforming; PCI INTA of slots 1 and 3 on bus 0, level, active low, to pins 16 and 18.
        #expect(interrupts.filter { $0[4] == 1 }.count == 16)
        #expect(interrupts.contains([3, 0, 0x0F, 0, 0, 1 << 2, 2, 16]))
        #expect(interrupts.contains([3, 0, 0x0F, 0, 0, 3 << 2, 2, 18]))
        // Without PCI the table keeps ISA on bus 0.
        let plain = Array(MPTable(platform: .init(cpuCount: 2, ioapicID: 2), base: MemoryMap.ebdaStart).bytes[16...])
        #expect(Int(plain[34]) == 2 + 1 + 1 + 16 + 2)
        #expect(Array(plain[84..<92]) == [1, 0] + Array("ISA   ".utf8))
    }

    @Test func kernelLoaderWritesTheTablesWithPCI() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 64 << 20))
        _ = try KernelLoader.load(BootRequest(imageName: "bz", image: SyntheticBzImage.make()), into: memory,
                                  platform: .init(cpuCount: 1, ioapicID: 1, pci: try Self.pciDescription()))
        let blob = try memory.read(at: MemoryMap.acpiTables, count: 0x1000)
        #expect(blob.contains(subsequence: Array("MCFG".utf8)))
        #expect(blob.contains(subsequence: Array("PCI0".utf8)))
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<$0 + subsequence.count]) == subsequence }
    }
}
