import Glibc
import Testing
import TestSupport
@testable import Partition

@Suite struct BootTrampolineTests {
    @Test func parametersLandAtTheirOffsets() {
        let pvh = BootTrampoline(mode: .pvh, entry: 0x10_0040, bootInfo: 0x6000).bytes
        #expect(pvh.count == BootTrampoline.code.count)
        #expect(Array(pvh[0x90..<0x9C]) == le(UInt32(0)) + le(UInt32(0x6000)) + le(UInt32(0x10_0040)))
        let linux = BootTrampoline(mode: .linux64, entry: 0x10_0200, bootInfo: 0x7000, pageTableRoot: 0x9000, stack: 0x8FF0).bytes
        #expect(Array(linux[0x90..<0x94]) == le(UInt32(1)))
        #expect(Array(linux[0x9C..<0xB8]) == le(UInt32(0x9000)) + le(UInt64(0x7000)) + le(UInt64(0x8FF0)) + le(UInt64(0x10_0200)))
        #expect(BootTrampoline.codeSegment == 0xF000)
    }

    /// The bytes in BootTrampoline.swift must be what Guests/firmware/boot-trampoline.S assembles to.
    @Test(.enabled(if: fileExists("/usr/bin/gcc") && fileExists("/usr/bin/objcopy"), "needs gcc and objcopy"))
    func codeMatchesTheAssemblySource() throws {
        let source = packageRoot + "/Guests/firmware/boot-trampoline.S"
        let directory = temporaryFile(named: "x", contents: []).dropLast(2)
        let object = directory + "/t.o", binary = directory + "/t.bin"
        #expect(system("gcc -c '\(source)' -o '\(object)' && objcopy -O binary -j .text '\(object)' '\(binary)'") == 0)
        let assembled = try ImageFile.read(String(binary), what: "trampoline")
        #expect(assembled == BootTrampoline.code)
    }
}
