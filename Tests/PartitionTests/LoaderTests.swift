import Glibc
import Testing
import TestSupport
@testable import Partition

@Suite struct ELFLoaderTests {
    let code: [UInt8] = [0xF4, 0xEB, 0xFD]

    @Test func parsesSegmentsAndPVHEntry() throws {
        let bytes = SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: code, memorySize: 0x2000)], pvhEntry: 0x10_0000)
        let elf = try ELFImage(parsing: bytes, name: "k")
        #expect(elf.pvhEntry == 0x10_0000)
        #expect(elf.segments.count == 1)
        #expect(elf.segments[0].memorySize == 0x2000)
    }

    @Test func rejectsBadELFs() {
        let good = SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: code)], pvhEntry: 0x10_0000)
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try ELFImage(parsing: bytes, name: "k"); return "accepted" } catch { return error.description }
        }
        #expect(message(SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: code)], pvhEntry: nil)).contains("PVH"))
        #expect(message(SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: code)], pvhEntry: 1, elfClass: 1)).contains("32-bit"))
        #expect(message(Array(good.prefix(100))).contains("truncated"))
        #expect(message(Array(good.dropLast(2))).contains("truncated"))
        #expect(message([0x7F, 0x45, 0x4C]).contains("not an ELF"))
    }

    @Test func loadsKernelStartInfoCmdlineAndInitrd() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 32 << 20))
        let image = SyntheticELF.make(segments: [.init(physicalAddress: 0x20_0000, bytes: code, memorySize: 0x1000)], pvhEntry: 0x20_0000)
        try memory.fill(0xAA, at: 0x20_0000, count: 0x1000) // bss must come back zeroed
        let initrd = [UInt8](repeating: 0x5A, count: 10_000)
        let boot = try KernelLoader.load(BootRequest(imageName: "k", image: image, initrd: initrd, cmdline: "console=ttyS0 x=1"), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
        #expect(boot.mode == .pvh && boot.entry == 0x20_0000 && boot.bootInfo == MemoryMap.pvhStartInfo)
        #expect(try memory.read(at: 0x20_0000, count: 3) == code)
        #expect(try memory.load(UInt8.self, at: 0x20_0FFF) == 0)
        // hvm_start_info
        let info = MemoryMap.pvhStartInfo
        #expect(try memory.load(UInt32.self, at: info) == 0x336E_C578)
        #expect(try memory.load(UInt32.self, at: info + 4) == 1)
        #expect(try memory.load(UInt32.self, at: info + 12) == 1)
        let cmdline = try memory.load(UInt64.self, at: info + 24)
        #expect(try memory.read(at: cmdline, count: 18) == Array("console=ttyS0 x=1\0".utf8))
        let modules = try memory.load(UInt64.self, at: info + 16)
        let initrdAddress = try memory.load(UInt64.self, at: modules)
        #expect(try memory.load(UInt64.self, at: modules + 8) == 10_000)
        #expect(initrdAddress % 4096 == 0 && initrdAddress + 10_000 <= 32 << 20)
        #expect(try memory.read(at: initrdAddress, count: 10_000) == initrd)
        let entries = try memory.load(UInt32.self, at: info + 48)
        #expect(Int(entries) == memory.map.e820.count)
        let mapAddress = try memory.load(UInt64.self, at: info + 40)
        #expect(try memory.load(UInt64.self, at: mapAddress + 24 * UInt64(entries - 1) + 8) == (32 << 20) - MemoryMap.highMemoryStart)
        // The trampoline is in the firmware page.
        #expect(try memory.read(at: MemoryMap.firmwareBase, count: boot.bytes.count) == boot.bytes)
    }

    @Test func kernelThatDoesNotFitIsRejected() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        let image = SyntheticELF.make(segments: [.init(physicalAddress: 0x100_0000, bytes: code, memorySize: 0x10_0000)], pvhEntry: 0x100_0000)
        #expect(throws: PartitionError.self) { try KernelLoader.load(BootRequest(imageName: "k", image: image), into: memory, platform: .init(cpuCount: 1, ioapicID: 1)) }
        let low = SyntheticELF.make(segments: [.init(physicalAddress: 0x1000, bytes: code)], pvhEntry: 0x1000)
        #expect(throws: PartitionError.self) { try KernelLoader.load(BootRequest(imageName: "k", image: low), into: memory, platform: .init(cpuCount: 1, ioapicID: 1)) }
    }

    @Test func initrdThatDoesNotFitIsRejected() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        let image = SyntheticELF.make(segments: [.init(physicalAddress: 0x10_0000, bytes: code)], pvhEntry: 0x10_0000)
        let initrd = [UInt8](repeating: 0, count: 16 << 20)
        #expect(throws: PartitionError.self) {
            try KernelLoader.load(BootRequest(imageName: "k", image: image, initrd: initrd), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
        }
    }

    @Test func neitherELFNorBzImage() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        do {
            _ = try KernelLoader.load(BootRequest(imageName: "notes.txt", image: Array("hello".utf8)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
            Issue.record("accepted a text file")
        } catch {
            #expect(error.description.contains("neither an ELF kernel nor a Linux bzImage"))
        }
    }
}

@Suite struct BzImageLoaderTests {
    @Test func parsesHeader() throws {
        let kernel = try BzImage(parsing: SyntheticBzImage.make(), name: "bz")
        #expect(kernel.protocolVersion == 0x020F)
        #expect(kernel.payloadOffset == 1024)
        #expect(kernel.cmdlineSize == 255)
        #expect(kernel.setupHeader.count == 0x268 - 0x1F1)
    }

    @Test func rejectsOldNo64BitAndTruncated() {
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try BzImage(parsing: bytes, name: "bz"); return "accepted" } catch { return error.description }
        }
        #expect(message(SyntheticBzImage.make(version: 0x0205)).contains("too old"))
        #expect(message(SyntheticBzImage.make(version: 0x020B)).contains("64-bit"))
        #expect(message(SyntheticBzImage.make(xloadflags: 0)).contains("64-bit"))
        #expect(message(Array(SyntheticBzImage.make().dropLast(100))).contains("truncated"))
        #expect(message(Array(SyntheticBzImage.make().prefix(0x220))).contains("truncated"))
    }

    @Test func writesZeroPageE820CmdlineInitrdAndPageTables() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 64 << 20))
        let image = SyntheticBzImage.make()
        let initrd = [UInt8](repeating: 7, count: 5000)
        let boot = try KernelLoader.load(BootRequest(imageName: "bz", image: image, initrd: initrd, cmdline: "quiet"), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
        #expect(boot.mode == .linux64)
        #expect(boot.entry == 0x10_0200)
        let params = MemoryMap.linuxBootParams
        #expect(boot.bootInfo == params)
        #expect(try memory.load(UInt16.self, at: params + 0x1FE) == 0xAA55)
        #expect(try memory.load(UInt32.self, at: params + 0x202) == 0x5372_6448)
        #expect(try memory.load(UInt8.self, at: params + 0x210) == 0xFF)
        let cmdline = UInt64(try memory.load(UInt32.self, at: params + 0x228))
        #expect(try memory.read(at: cmdline, count: 6) == Array("quiet\0".utf8))
        let initrdAddress = UInt64(try memory.load(UInt32.self, at: params + 0x218))
        #expect(try memory.load(UInt32.self, at: params + 0x21C) == 5000)
        #expect(try memory.read(at: initrdAddress, count: 5000) == initrd)
        #expect(Int(try memory.load(UInt8.self, at: params + 0x1E8)) == memory.map.e820.count)
        #expect(try memory.load(UInt32.self, at: params + 0x2D0 + 16) == 1) // first e820 entry is RAM
        #expect(try memory.read(at: 0x10_0000, count: 4) == [0x90, 0x90, 0x90, 0x90])
        // Identity map: PML4[0] → PDPT, PD entries map 2 MiB pages up to 4 GiB.
        #expect(try memory.load(UInt64.self, at: MemoryMap.pageTableBase) == (MemoryMap.pageTableBase + 0x1000) | 3)
        let lastDirectory = MemoryMap.pageTableBase + 0x2000 + 3 * 0x1000
        #expect(try memory.load(UInt64.self, at: lastDirectory + 511 * 8) == (0xFFE0_0000 | 0x83))
    }

    @Test func cmdlineLongerThanTheKernelTakesIsRejected() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 64 << 20))
        let image = SyntheticBzImage.make(cmdlineSize: 16)
        do {
            _ = try KernelLoader.load(BootRequest(imageName: "bz", image: image, cmdline: String(repeating: "a", count: 17)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
            Issue.record("accepted")
        } catch { #expect(error.description.contains("at most 16")) }
        _ = try KernelLoader.load(BootRequest(imageName: "bz", image: image, cmdline: String(repeating: "a", count: 16)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
    }

    @Test func initrdAboveInitrdAddrMaxRoomIsRejected() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 256 << 20))
        // The kernel runs from 16 MiB with 1 MiB init_size: 8 MiB of room below a 24 MiB limit.
        let image = SyntheticBzImage.make(initrdAddressMax: (24 << 20) - 1)
        do {
            _ = try KernelLoader.load(BootRequest(imageName: "bz", image: image, initrd: [UInt8](repeating: 0, count: 9 << 20)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
            Issue.record("accepted")
        } catch { #expect(error.description.contains("initrd_addr_max")) }
        let boot = try KernelLoader.load(BootRequest(imageName: "bz", image: image, initrd: [UInt8](repeating: 0, count: 6 << 20)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
        let address = try memory.load(UInt32.self, at: boot.bootInfo + 0x218)
        #expect(UInt64(address) + (6 << 20) <= 24 << 20)
    }

    @Test func kernelLargerThanMemoryIsRejected() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        do {
            _ = try KernelLoader.load(BootRequest(imageName: "bz", image: SyntheticBzImage.make(initSize: 32 << 20)), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
            Issue.record("accepted")
        } catch { #expect(error.description.contains("--memory")) }
    }
}

/// The real header of Debian's cloud kernel, fetched by `make test` (Tests/Fixtures/fetch-debian-kernel.sh).
@Suite(.enabled(if: DebianKernel.path != nil, "Debian's bzImage not fetched: run `make fetch-kernel` (make test does)"))
struct DebianBzImageTests {
    @Test func headerOfTheDebianCloudKernel() throws {
        let bytes = try ImageFile.read(DebianKernel.path!, what: "kernel")
        let kernel = try BzImage(parsing: bytes, name: "vmlinuz")
        #expect(kernel.protocolVersion >= 0x020F)
        #expect(kernel.xloadflags & 1 != 0)           // 64-bit entry
        #expect(kernel.relocatable)
        #expect(kernel.cmdlineSize >= 2047)
        #expect(kernel.kernelAlignment == 0x20_0000)
        #expect(kernel.preferredAddress == 0x100_0000)
        #expect(kernel.initSize > UInt32(kernel.payloadSize))
        // And it loads into a guest large enough for it.
        let memory = try GuestMemory(map: MemoryMap(ramSize: 256 << 20))
        let boot = try KernelLoader.load(BootRequest(imageName: "vmlinuz", image: bytes, cmdline: "console=ttyS0"), into: memory, platform: .init(cpuCount: 1, ioapicID: 1))
        #expect(boot.entry == 0x10_0200)
    }
}

enum DebianKernel {
    static let path: String? = {
        let candidate = packageRoot + "/.cache/debian/vmlinuz-cloud-amd64"
        return fileExists(candidate) ? candidate : nil
    }()
}
