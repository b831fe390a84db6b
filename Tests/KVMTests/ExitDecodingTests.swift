import CKVM
import Testing
@testable import KVM

/// Decodes exits from a hand-written kvm_run page, at the offsets of the kernel's layout:
/// exit_reason at 8, the exit union at 32.
@Suite struct ExitDecodingTests {
    final class RunPage {
        // KVM maps three pages: kvm_run, then the PIO data page at 4096, then the coalesced-MMIO ring.
        let size = 3 * 4096
        let pointer: UnsafeMutableRawPointer
        init() {
            pointer = .allocate(byteCount: size, alignment: 64)
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        }
        deinit { pointer.deallocate() }
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) { pointer.storeBytes(of: value, toByteOffset: offset, as: T.self) }
        func decode() -> VCPUExit { VCPUExit.decode(run: pointer, size: size) }
    }

    @Test func portOutput() throws {
        let page = RunPage()
        page.put(UInt32(KVM_EXIT_IO), at: 8)
        page.put(UInt8(KVM_EXIT_IO_OUT), at: 32)
        page.put(UInt8(1), at: 33)
        page.put(UInt16(0x3F8), at: 34)
        page.put(UInt32(1), at: 36)
        page.put(UInt64(0x1000), at: 40)
        page.put(UInt8(ascii: "h"), at: 0x1000)
        guard case .io(let io) = page.decode() else { Issue.record("not an I/O exit"); return }
        #expect(io.direction == .output)
        #expect(io.port == 0x3F8)
        #expect(io.size == 1 && io.count == 1)
        #expect(Array(io.data) == [UInt8(ascii: "h")])
    }

    @Test func stringPortInputCoversAllRepeats() throws {
        let page = RunPage()
        page.put(UInt32(KVM_EXIT_IO), at: 8)
        page.put(UInt8(KVM_EXIT_IO_IN), at: 32)
        page.put(UInt8(2), at: 33)
        page.put(UInt16(0x1F0), at: 34)
        page.put(UInt32(8), at: 36)
        page.put(UInt64(0x1000), at: 40)
        guard case .io(let io) = page.decode() else { Issue.record("not an I/O exit"); return }
        #expect(io.direction == .input)
        #expect(io.data.count == 16)
    }

    @Test func portDataOutsideThePageIsRejected() {
        let page = RunPage()
        page.put(UInt32(KVM_EXIT_IO), at: 8)
        page.put(UInt8(4), at: 33)
        page.put(UInt32(2), at: 36)
        page.put(UInt64(3 * 4096 - 4), at: 40) // 8 bytes from here run past the mapping
        guard case .unknown = page.decode() else { Issue.record("out-of-page data was accepted"); return }
    }

    @Test func mmioWrite() {
        let page = RunPage()
        page.put(UInt32(KVM_EXIT_MMIO), at: 8)
        page.put(UInt64(0xFEC0_0010), at: 32)
        page.put(UInt32(0x1234_5678), at: 40)
        page.put(UInt32(4), at: 48)
        page.put(UInt8(1), at: 52)
        guard case .mmio(let access) = page.decode() else { Issue.record("not an MMIO exit"); return }
        #expect(access.address == 0xFEC0_0010)
        #expect(access.isWrite)
        #expect(Array(access.data) == [0x78, 0x56, 0x34, 0x12])
    }

    @Test func otherReasons() {
        let page = RunPage()
        page.put(UInt32(KVM_EXIT_SHUTDOWN), at: 8)
        guard case .shutdown = page.decode() else { Issue.record("shutdown"); return }
        page.put(UInt32(KVM_EXIT_IOAPIC_EOI), at: 8)
        page.put(UInt8(0x31), at: 32)
        guard case .ioapicEOI(let vector) = page.decode(), vector == 0x31 else { Issue.record("EOI"); return }
        page.put(UInt32(KVM_EXIT_INTERNAL_ERROR), at: 8)
        page.put(UInt32(1), at: 32)
        page.put(UInt32(2), at: 36)
        page.put(UInt64(0xAA), at: 40)
        page.put(UInt64(0xBB), at: 48)
        guard case .internalError(let suberror, let data) = page.decode() else { Issue.record("internal error"); return }
        #expect(suberror == 1 && data == [0xAA, 0xBB])
        page.put(UInt32(9999), at: 8)
        guard case .unknown(let reason, _) = page.decode(), reason == 9999 else { Issue.record("unknown"); return }
    }
}
