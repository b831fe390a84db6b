// A guest that sends what Linux never would: every case ends in an error status or a counted drop, never a trap,
// and never a byte outside guest memory.

import Synchronization
import Testing
@testable import VMBus
@testable import VSP

@Suite struct NetVSPBadInputTests {
    /// An RNDIS stream in send section `section` as the guest wrote it, sent inband; returns the completion status.
    func sendSection(_ guest: LinuxNetVSC, _ bytes: [UInt8], section: UInt32 = 0, size: UInt32? = nil) -> UInt32? {
        guest.writeBuffer(LinuxNetVSC.sendGPADL, Int(section % 5) * guest.sendSectionSize, bytes)
        let id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(section) + net32(size ?? UInt32(bytes.count))))
        return guest.takeCompletion(id)?.netU32(4)
    }

    /// An RNDIS packet message with the given header fields and `payload` after the 44 bytes.
    func packet(length: UInt32, dataOffset: UInt32, dataLength: UInt32, ppiOffset: UInt32 = 0, ppiLength: UInt32 = 0,
                payload: [UInt8]) -> [UInt8] {
        net32(LinuxNet.rndisPacket) + net32(length) + net32(dataOffset) + net32(dataLength) + net32(0) + net32(0) + net32(0)
            + net32(ppiOffset) + net32(ppiLength) + net32(0) + net32(0) + payload
    }

    @Test func rndisOffsetsAndLengthsPastTheMessage() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let frame = LinuxNetVSC.frame(length: 60)
        let cases: [[UInt8]] = [
            packet(length: 104, dataOffset: 36, dataLength: 61, payload: frame),          // data runs past msg_len
            packet(length: 104, dataOffset: 0xFFFF_FFF0, dataLength: 0x20, payload: frame), // offset + length wraps in 32 bits
            packet(length: 104, dataOffset: 8, dataLength: 60, payload: frame),           // data overlaps the header
            packet(length: 104, dataOffset: 36, dataLength: 0, payload: frame),           // no data
            Array(packet(length: 40, dataOffset: 36, dataLength: 4, payload: []).prefix(40)), // msg_len shorter than the header
            packet(length: 104, dataOffset: 36, dataLength: 60, ppiOffset: 90, ppiLength: 20, payload: frame), // PPI past msg_len
            packet(length: 116, dataOffset: 48, dataLength: 60, ppiOffset: 36, ppiLength: 12,  // PPI record size 0
                   payload: net32(0) + net32(8) + net32(12) + frame),
            packet(length: 116, dataOffset: 48, dataLength: 60, ppiOffset: 36, ppiLength: 12,  // PPI record larger than the PPI area
                   payload: net32(64) + net32(8) + net32(12) + frame),
            packet(length: 52, dataOffset: 36, dataLength: 8, payload: [UInt8](repeating: 1, count: 8)), // shorter than Ethernet
            packet(length: 1000, dataOffset: 36, dataLength: 60, payload: frame),         // msg_len past the section's bytes
            net32(LinuxNet.rndisPacket) + net32(0) + [UInt8](repeating: 0, count: 36),        // msg_len 0: must not loop
            net32(LinuxNet.rndisPacket) + net32(4) + [UInt8](repeating: 0, count: 36),        // msg_len below the header
            net32(0x1234) + net32(8),                                                      // unknown RNDIS message
            [1, 2, 3],                                                                     // not even a header
        ]
        for (index, bytes) in cases.enumerated() {
            #expect(sendSection(guest, bytes) == 5, "case \(index): NVSP_STAT_INVALID_RNDIS_PKT")
        }
        #expect(guest.transmitted.isEmpty)
        #expect(guest.machine.counters.txDroppedMalformed == UInt64(cases.count))
        // A good packet after a bad one in the same section: the good one goes out, the status reports the bad one.
        let good = LinuxNetVSC.rndisPacket(frame: frame, pad: 8)
        #expect(sendSection(guest, good + cases[0]) == 5)
        #expect(guest.transmitted == [frame])
    }

    @Test func sendSectionsOutOfRange() throws {
        let guest = try LinuxNetVSC()
        guest.connect()
        guest.gpadl(LinuxNetVSC.recvGPADL, pages: (0..<8).map { 0x100 + $0 })
        guest.recvBufSize = 8 * 4096
        let id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(LinuxNetVSC.recvGPADL) + net16(0xCAFE)))
        guest.recvSectionSize = Int(try #require(guest.takeCompletion(id)).netU32(16))
        _ = guest.rndisInitialize()
        let message = LinuxNetVSC.rndisPacket(frame: LinuxNetVSC.frame(length: 60))
        // No send buffer yet.
        var request = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(0) + net32(UInt32(message.count))))
        #expect(guest.takeCompletion(request)?.netU32(4) == LinuxNet.statFail)
        guest.initBuffers(recvPages: (0..<8).map { 0x100 + $0 }, sendPages: (0..<8).map { 0x200 + $0 })
        // 8 pages hold 5 sections of 6144: index 5 and beyond are out of range, and so is a size past the section.
        for (index, size) in [(UInt32(5), UInt32(message.count)), (0xFFFF_FFFE, 60), (0, 6145), (4, 0xFFFF_FFFF)] {
            request = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(index) + net32(size)))
            #expect(guest.takeCompletion(request)?.netU32(4) == LinuxNet.statFail, "section \(index), \(size) bytes")
        }
        #expect(guest.machine.counters.txDroppedBadSection == 5)
        #expect(guest.transmitted.isEmpty)
        // The last section is fine.
        #expect(sendSection(guest, message, section: 4) == LinuxNet.statSuccess)
        #expect(guest.transmitted.count == 1)
    }

    @Test func unknownOIDs() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let before = guest.machine.counters.unsupportedOIDs
        for oid: UInt32 in [0x0001_0101, 0x0001_0204, 0x0101_0103, 0xDEAD_BEEF] {
            let answer = try #require(guest.query(oid))
            #expect(answer.status == LinuxNet.statusNotSupported && answer.data.isEmpty)
            #expect(guest.set(oid, net32(1)) == LinuxNet.statusNotSupported)
        }
        #expect(guest.machine.counters.unsupportedOIDs == before + 8)
        // A config parameter other than NetworkAddress, and malformed ones.
        let name = Array("VlanID".utf16).flatMap(net16)
        #expect(guest.set(LinuxNet.oidConfigParameter, net32(20) + net32(12) + net32(0) + net32(32) + net32(4) + name + net32(5))
                == LinuxNet.statusNotSupported)
        #expect(guest.set(LinuxNet.oidConfigParameter, net32(20) + net32(0xFFFF) + net32(2) + net32(0) + net32(0)) == LinuxNet.statusInvalidData)
        let address = Array("NetworkAddress".utf16).flatMap(net16), multicast = Array("01aabbccddee".utf16).flatMap(net16)
        #expect(guest.set(LinuxNet.oidConfigParameter, net32(20) + net32(28) + net32(2) + net32(48) + net32(24) + address + multicast)
                == LinuxNet.statusInvalidData, "a multicast MAC")
        // Offloads hv does not do are refused; a short or mistyped structure is invalid.
        var parameters = [UInt8](repeating: 0, count: 28)
        parameters[0] = 0x80; parameters[1] = 3; parameters[2] = 28; parameters[5] = 4
        #expect(guest.set(LinuxNet.oidOffloadParameters, parameters) == LinuxNet.statusNotSupported)
        #expect(guest.set(LinuxNet.oidOffloadParameters, [0x80]) != LinuxNet.statusSuccess)
        #expect(guest.set(LinuxNet.oidOffloadParameters, [0x81, 3, 28, 0]) == LinuxNet.statusInvalidData)
        #expect(guest.set(LinuxNet.oidCurrentPacketFilter, [1, 0]) != LinuxNet.statusSuccess)
        #expect(guest.machine.packetFilter == 0x0D, "a short filter leaves the filter alone")
    }

    @Test func informationBufferPastTheRequest() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // info_buf_offset + info_buflen past msg_len: the answer carries the request id and RNDIS_STATUS_INVALID_DATA.
        let query = guest.request(net32(LinuxNet.rndisQuery) + net32(32) + net32(41) + net32(LinuxNet.oidPermanentAddress)
                                  + net32(64) + net32(20) + net32(0) + net32(0))
        #expect(query.map { [$0.netU32(0), $0.netU32(8), $0.netU32(12), $0.netU32(16), $0.netU32(20)] }
                == [LinuxNet.rndisQueryC, 41, LinuxNet.statusInvalidData, 0, 16])
        let set = guest.request(net32(LinuxNet.rndisSet) + net32(32) + net32(42) + net32(LinuxNet.oidCurrentPacketFilter)
                                + net32(4) + net32(0) + net32(0) + net32(0x20))
        #expect(set.map { [$0.netU32(0), $0.netU32(8), $0.netU32(12)] } == [LinuxNet.rndisSetC, 42, LinuxNet.statusInvalidData])
        #expect(guest.machine.packetFilter == 0x0D)
        // A control message shorter than its type needs gets no answer, only the failed completion status.
        try guest.memory.write(net32(LinuxNet.rndisQuery) + net32(16) + net32(43) + net32(1), at: LinuxNetVSC.requestAddress)
        let id = guest.pageBuffer(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(1) + net32(LinuxNet.invalidIndex) + net32(0)),
                                  ranges: LinuxNetVSC.pageRanges(at: LinuxNetVSC.requestAddress, count: 16))
        #expect(guest.takeCompletion(id)?.netU32(4) == 5)
        #expect(guest.takeTransfer() == nil)
    }

    @Test func dataBeforeInitialization() throws {
        let guest = try LinuxNetVSC()
        let frame = LinuxNetVSC.frame(length: 60)
        // Before INIT: SEND_RNDIS_PKT fails, other requests fail, the rest is ignored.
        var id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(LinuxNet.invalidIndex) + net32(0)))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(1) + net16(0xCAFE)))
        #expect(guest.takeCompletion(id).map { [$0.netU32(0), $0.netU32(4)] } == [LinuxNet.msgSendRecvBuf, LinuxNet.statFail])
        guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendNDISVersion, net32(6) + net32(30)), completion: false)
        #expect(guest.machine.ndisVersion == nil)
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.notReady))
        // NVSP up with buffers but RNDIS not initialized: packets are dropped with a failure status.
        guest.connect()
        guest.initBuffers(recvPages: (0..<8).map { 0x100 + $0 }, sendPages: (0..<8).map { 0x200 + $0 })
        #expect(sendSection(guest, LinuxNetVSC.rndisPacket(frame: frame)) == LinuxNet.statFail)
        #expect(guest.transmitInPages(frame) == LinuxNet.statFail)
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.notReady))
        #expect(guest.transmitted.isEmpty)
        #expect(guest.machine.counters.txDroppedNotReady == 3)
        #expect(guest.machine.counters.rxDroppedNotReady == 2)
        // NDIS config at NVSP 1 is out of order.
        var configuration = NetVSPConfiguration(mac: LinuxNetVSC.mac)
        configuration.maxVersion = .v1
        let old = try LinuxNetVSC(configuration: configuration)
        old.connect()
        old.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendNDISConfig, net32(9014) + net32(0) + net64(0)), completion: false)
        #expect(old.machine.ndisMTU == nil && old.machine.counters.protocolErrors == 1)
    }

    @Test func oversizedFrames() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // Frames up to MTU + 14 + a VLAN tag go through; one byte more is dropped.
        let largest = LinuxNetVSC.frame(length: 1518), larger = LinuxNetVSC.frame(length: 1519)
        #expect(sendSection(guest, LinuxNetVSC.rndisPacket(frame: largest)) == LinuxNet.statSuccess)
        #expect(guest.transmitInPages(larger) == LinuxNet.statSuccess)
        #expect(guest.transmitted == [largest])
        #expect(guest.machine.counters.txDroppedOversized == 1)
        // A 1514-byte frame with a VLAN tag to insert fits; a 1515-byte one does not.
        #expect(guest.transmitInPages(LinuxNetVSC.frame(length: 1514), vlan: 7 << 4) == LinuxNet.statSuccess)
        #expect(guest.transmitted.last?.count == 1518)
        #expect(guest.transmitInPages(LinuxNetVSC.frame(length: 1515), vlan: 7 << 4) == LinuxNet.statSuccess)
        #expect(guest.transmitted.count == 2)
        #expect(guest.machine.counters.txDroppedOversized == 2)
        // Towards the guest: the section holds 1600 - 44 bytes of frame.
        let fits = [UInt8](LinuxNetVSC.frame(length: 1556)), tooBig = LinuxNetVSC.frame(length: 1557)
        #expect(fits.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
        #expect(tooBig.withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.oversized))
        #expect([UInt8]().withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.filtered))
        #expect(guest.machine.counters.rxDroppedOversized == 1)
    }

    @Test func pageBuffersOutsideGuestMemoryOrTooMany() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let nvsp = LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(LinuxNet.invalidIndex) + net32(0))
        let ramPages = UInt64(16 << 20) >> 12
        let bad: [[(len: UInt32, offset: UInt32, pfn: UInt64)]] = [
            [(100, 0, ramPages)],                          // the first page past RAM
            [(100, 0, 0x380), (100, 0, 1 << 40)],          // one good page, one far outside
            [(100, 0, UInt64.max)],                        // an address that overflows
            [(100, 0, 0xC0000)],                           // the MMIO hole
            [(100, 4000, 0x380)],                          // a range longer than its one page
            [(100, 4096, 0x380)],                          // offset outside the page
            [(0, 0, 0x380)],                               // empty range
            Array(repeating: (100, 0, 0x380), count: 65),  // more ranges than allowed
        ]
        for (index, ranges) in bad.enumerated() {
            let id = guest.pageBuffer(nvsp, ranges: ranges)
            #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail, "case \(index)")
        }
        #expect(guest.machine.counters.txDroppedBadPages == UInt64(bad.count))
        #expect(guest.transmitted.isEmpty)
        // A GPA-direct header cut short (range count says 3, one range present).
        let id = guest.newTransaction()
        let header = net32(0) + net32(3) + net32(100) + net32(0) + net64(0x380)
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktDataUsingGPADirect, flags: LinuxNet.completionRequested, transactionID: id,
                                         header: header, payload: nvsp))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
    }

    @Test func completionsForTransactionsNotOutstanding() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let free = guest.machine.freeReceiveSections
        guest.completeTransfer(0xDEAD)
        guest.completeTransfer(0)
        // A real one, completed twice.
        #expect(LinuxNetVSC.frame(length: 60).withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
        guest.flush()
        let transfer = try #require(guest.takeTransfer())
        guest.completeTransfer(transfer.transactionID, status: LinuxNet.statFail)
        guest.completeTransfer(transfer.transactionID)
        #expect(guest.machine.counters.unknownCompletions == 3)
        #expect(guest.machine.counters.rxRejectedByGuest == 1)
        #expect(guest.machine.freeReceiveSections == free, "no section freed twice")
        // Completions that are not SEND_RNDIS_PKT_COMPLETE, or too short.
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktComp, flags: 0, transactionID: 1, payload: net32(102) + net32(1)))
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktComp, flags: 0, transactionID: 1, payload: []))
        #expect(guest.machine.counters.protocolErrors == 2)
        #expect(guest.inbound.isEmpty)
    }

    @Test func buffersWhoseGPADLsDoNotExist() throws {
        let guest = try LinuxNetVSC()
        guest.connect()
        var id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(0x4242) + net16(0xCAFE)))
        #expect(guest.takeCompletion(id).map { [$0.netU32(0), $0.netU32(4), $0.netU32(8)] } == [LinuxNet.msgSendRecvBufComplete, LinuxNet.statFail, 0])
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendSendBuf, net32(0x4243) + net16(0)))
        #expect(guest.takeCompletion(id).map { [$0.netU32(0), $0.netU32(4)] } == [LinuxNet.msgSendSendBufComplete, LinuxNet.statFail])
        // A send buffer smaller than one section, and a GPADL whose pages are not RAM.
        guest.gpadl(7, pages: [0x200])
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendSendBuf, net32(7) + net16(0)))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        guest.gpadl(8, pages: [0x100, 1 << 30])
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(8) + net16(0xCAFE)))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        #expect(guest.machine.counters.protocolErrors == 4)
        // The real ones still work, once; a second receive buffer is refused.
        #expect(guest.initBuffers(recvPages: (0..<8).map { 0x100 + $0 }, sendPages: (0..<8).map { 0x200 + $0 })
                == (LinuxNet.statSuccess, LinuxNet.statSuccess))
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(LinuxNetVSC.recvGPADL) + net16(0xCAFE)))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        // Revoking a buffer id that is not attached.
        guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgRevokeRecvBuf, net16(0x1234)), completion: false)
        #expect(guest.machine.counters.protocolErrors == 6)
        #expect(guest.machine.freeReceiveSections > 0)
    }

    @Test func malformedAndUnknownNVSPMessages() throws {
        let guest = try LinuxNetVSC()
        // Too short for its type (8 bytes of payload), with and without a completion request.
        var id = guest.newTransaction()
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktDataInband, flags: LinuxNet.completionRequested, transactionID: id,
                                         payload: net32(LinuxNet.msgInit) + net32(0x60001)))
        #expect(guest.takeCompletion(id).map { [$0.netU32(0), $0.netU32(4)] } == [LinuxNet.msgInit, LinuxNet.statFail])
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktDataInband, flags: 0, transactionID: 5, payload: []))
        guest.connect()
        // Unknown message types, a message type only a host sends, and packet types NetVSC never sends.
        id = guest.inband(LinuxNetVSC.nvsp(999, []))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacketComplete, net32(1)), completion: false)
        guest.deliver(LinuxNetVSC.packet(type: LinuxNet.pktDataUsingXferPages, flags: 0, transactionID: 6, header: [UInt8](repeating: 0, count: 8),
                                         payload: LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, [])))
        #expect(guest.machine.counters.protocolErrors == 5)
        // An INIT with a version range that holds nothing hv speaks, and one below them all.
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgInit, net32(0x30000) + net32(0x30001)))
        #expect(guest.takeCompletion(id)?.netU32(12) == 7, "NVSP_STAT_PROTOCOL_UNSUPPORTED")
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgInit, net32(0) + net32(1)))
        #expect(guest.takeCompletion(id)?.netU32(12) == 4, "NVSP_STAT_PROTOCOL_TOO_OLD")
        #expect(guest.machine.version == .v61, "a failed INIT leaves the session alone")
    }

    @Test func answersWaitForAFreeSectionAndRingSpace() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // Every section holds a frame the guest has not completed.
        var transfers: [UInt64] = []
        while LinuxNetVSC.frame(length: 60).withUnsafeBytes({ guest.machine.receiveFrame($0) }) == .accepted {
            guest.flush()
            transfers.append(try #require(guest.takeTransfer()).transactionID)
        }
        // A keepalive now: its completion goes out, its answer waits for a section.
        try guest.memory.write(net32(LinuxNet.rndisKeepalive) + net32(12) + net32(99), at: LinuxNetVSC.requestAddress)
        let nvsp = LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(1) + net32(LinuxNet.invalidIndex) + net32(0))
        let id = guest.pageBuffer(nvsp, ranges: LinuxNetVSC.pageRanges(at: LinuxNetVSC.requestAddress, count: 12))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statSuccess)
        #expect(guest.takeTransfer() == nil)
        // The ring fills too: completing a frame frees a section, but the answer cannot be announced yet.
        guest.ringFull = true
        guest.completeTransfer(transfers.removeFirst())
        #expect(guest.machine.hasPendingOutput && guest.inbound.isEmpty)
        guest.ringFull = false
        guest.flush()
        let answer = try #require(guest.takeTransfer())
        #expect(answer.channelType == 1 && answer.messages[0].netU32(0) == LinuxNet.rndisKeepaliveC && answer.messages[0].netU32(8) == 99)
    }

    /// NetVSPMemory faked without a partition: the state machine only sees the protocol.
    final class FakeMemory: NetVSPMemory {
        final class Buffer: NetVSPBuffer, @unchecked Sendable {
            // @unchecked: the test touches the bytes only between calls into the state machine, on one thread.
            let bytes: UnsafeMutableRawBufferPointer
            var count: Int { bytes.count }
            init(count: Int) {
                bytes = .allocate(byteCount: count, alignment: 64)
                bytes.initializeMemory(as: UInt8.self, repeating: 0)
            }
            deinit { bytes.deallocate() }
            func span(_ offset: Int, _ length: Int) -> UnsafeMutableRawBufferPointer? {
                guard offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
                return UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<offset + length])
            }
        }
        let buffers: [UInt32: Buffer]
        let physicalCalls = Atomic<Int>(0)
        init(buffers: [UInt32: Buffer]) { self.buffers = buffers }
        func buffer(gpadl handle: UInt32) -> (any NetVSPBuffer)? { buffers[handle] }
        func physical(_ address: UInt64, _ length: Int) -> UnsafeMutableRawBufferPointer? {
            physicalCalls.add(1, ordering: .relaxed)
            return nil
        }
    }

    @Test func fakeMemoryThroughTheProtocolOnly() throws {
        let receive = FakeMemory.Buffer(count: 3 * 1600 + 100), send = FakeMemory.Buffer(count: 6144)
        let fake = FakeMemory(buffers: [LinuxNetVSC.recvGPADL: receive, LinuxNetVSC.sendGPADL: send])
        let guest = try LinuxNetVSC(memory: fake)
        guest.connect()
        var id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRecvBuf, net32(LinuxNetVSC.recvGPADL) + net16(0xCAFE)))
        #expect(guest.takeCompletion(id).map { [$0.netU32(4), $0.netU32(16), $0.netU32(20)] } == [1, 1600, 3])
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendSendBuf, net32(LinuxNetVSC.sendGPADL) + net16(0)))
        #expect(guest.takeCompletion(id)?.netU32(4) == 1)
        // RNDIS INITIALIZE from the send buffer (the fake has no guest-physical pages at all).
        let initialize = net32(LinuxNet.rndisInit) + net32(24) + net32(1) + net32(1) + net32(0) + net32(0x4000)
        send.bytes.copyBytes(from: initialize)
        id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(1) + net32(0) + net32(24)))
        #expect(guest.takeCompletion(id)?.netU32(4) == 1)
        let answer = try #require(guest.inbound.first { $0.type == LinuxNet.pktDataUsingXferPages })
        let offset = Int(answer.header.netU32(12))
        #expect(Array(receive.bytes[offset..<offset + 8]) == net32(LinuxNet.rndisInitC) + net32(52))
        // Page buffers are refused when the memory says the pages are not RAM.
        id = guest.pageBuffer(LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(LinuxNet.invalidIndex) + net32(0)),
                              ranges: [(100, 0, 0x380)])
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statFail)
        #expect(fake.physicalCalls.load(ordering: .relaxed) == 1)
    }
}
