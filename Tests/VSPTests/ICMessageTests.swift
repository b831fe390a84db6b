import Testing
import VMBus
@testable import VSP

@Suite struct ICMessageTests {
    @Test func structureSizesMatchHypervH() {
        #expect(VMBusPipeHeader.size == 8)          // struct vmbuspipe_hdr
        #expect(ICVersion.size == 4)                // struct ic_version
        #expect(ICMsgHeader.size == 20)             // struct icmsg_hdr
        #expect(ICLayout.icmsgHdr == 28)            // ICMSG_HDR
        #expect(ICNegotiate.fixedSize == 8)         // sizeof(struct icmsg_negotiate), flexible array excluded
        #expect(HeartbeatMsgData.size == 40)        // struct heartbeat_msg_data
        #expect(ShutdownMsgData.size == 2060)       // struct shutdown_msg_data
        #expect(HeartbeatMsgData(seqNum: 1).bytes.count == 40)
        #expect(ShutdownMsgData(reasonCode: 0, timeoutSeconds: 0, flags: 0, displayMessage: Array(repeating: 1, count: 5000))
            .bytes.count == 2060)
        #expect(ICNegotiate(frameworkVersions: [ICVersion(3, 0)], messageVersions: [ICVersion(1, 0), ICVersion(3, 0)])
            .bytes.count == 8 + 3 * 4)
        let message = ICMessage.request(type: ICMsgType.heartbeat, framework: ICVersion(3, 0),
                                        message: ICVersion(3, 0), body: [1, 2, 3])
        #expect(message.bytes.count == 28 + 3)
    }

    @Test func constantsMatchLinux() {
        #expect([ICMsgType.negotiate, ICMsgType.heartbeat, ICMsgType.kvpExchange, ICMsgType.shutdown,
                 ICMsgType.timeSync, ICMsgType.vss, ICMsgType.fcopy] == [0, 1, 2, 3, 4, 5, 7])
        #expect([ICMsgHdrFlag.transaction, ICMsgHdrFlag.request, ICMsgHdrFlag.response] == [1, 2, 4])
        #expect(ICStatus.hvSOK == 0)
        #expect(ICStatus.hvEFail == 0x8000_4005)
        #expect(ICStatus.hvErrorNotSupported == 0x8007_0032)
        #expect(ICLayout.maxVersionCount == 100)
        #expect(ICVersion.utilFramework.packed == 0x0003_0000)        // UTIL_FW_VERSION
        #expect(ICVersion.utilWS2K8Framework.packed == 0x0001_0000)   // UTIL_WS2K8_FW_VERSION
        #expect(ICVersion(packed: 0x0003_0002) == ICVersion(3, 2))    // SD_VERSION_3_2
    }

    @Test func heartbeatNegotiateRequestBytes() {
        var ic = HeartbeatIC()
        let request = ic.opened()
        #expect(request.transactionID == 1)
        #expect(request.payload == [
            0x01, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00,   // vmbuspipe_hdr: flags 1, msgsize 44
            0x00, 0x00, 0x00, 0x00,                           // icverframe 0.0
            0x00, 0x00,                                       // ICMSGTYPE_NEGOTIATE
            0x00, 0x00, 0x00, 0x00,                           // icvermsg 0.0
            0x18, 0x00,                                       // icmsgsize 24
            0x00, 0x00, 0x00, 0x00,                           // status HV_S_OK
            0x00, 0x03, 0x00, 0x00,                           // ictransaction_id 0, TRANSACTION | REQUEST
            0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,   // icframe_vercnt 2, icmsg_vercnt 2, reserved
            0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,   // framework 3.0, 1.0
            0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,   // heartbeat 3.0, 1.0
        ])
    }

    @Test func shutdownNegotiateRequestBytes() {
        var ic = ShutdownIC()
        #expect(ic.opened().payload == [
            0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00,   // msgsize 52
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x20, 0x00,                                       // icmsgsize 32
            0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
            0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,   // 2 framework, 4 message versions
            0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x03, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        ])
    }

    @Test func messageRoundTripsAndIgnoresPadding() throws {
        var message = ICMessage.request(type: ICMsgType.shutdown, framework: ICVersion(3, 0),
                                        message: ICVersion(3, 2), body: [9, 8, 7, 6, 5])
        message.header.status = ICStatus.hvEFail
        message.header.ictransactionID = 7
        message.header.icflags = ICMsgHdrFlag.transaction | ICMsgHdrFlag.response
        let padded = message.bytes + [0, 0, 0]
        let decoded = try ICMessage(decoding: padded)
        #expect(decoded == message)
        #expect(decoded.header.isResponse)
        #expect(decoded.pipe.msgsize == 25)
        let bytes = message.bytes
        #expect(le32(bytes, 20) == 0x8000_4005)
        #expect(bytes[24] == 7 && bytes[25] == 5)
        #expect(le16(bytes, 18) == 5)
    }

    @Test func negotiateRoundTripsAndIsChecked() throws {
        let negotiate = ICNegotiate(frameworkVersions: [ICVersion(3, 0)], messageVersions: [ICVersion(3, 2)])
        #expect(try ICNegotiate(decoding: negotiate.bytes) == negotiate)
        #expect(throws: ICRejection.truncatedBody(icmsgtype: 0, needed: 8, icmsgsize: 4)) {
            try ICNegotiate(decoding: [1, 0, 1, 0])
        }
        #expect(throws: ICRejection.truncatedBody(icmsgtype: 0, needed: 16, icmsgsize: 12)) {
            try ICNegotiate(decoding: Array(negotiate.bytes.prefix(12)))
        }
        #expect(throws: ICRejection.tooManyVersions(framework: 101, message: 0)) {
            try ICNegotiate(decoding: [101, 0, 0, 0, 0, 0, 0, 0])
        }
        #expect(throws: ICRejection.tooManyVersions(framework: 0xFFFF, message: 0xFFFF)) {
            try ICNegotiate(decoding: [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        }
    }

    @Test func bodiesDecode() throws {
        #expect(try HeartbeatMsgData(decoding: HeartbeatMsgData(seqNum: 0x1122_3344_5566_7788).bytes).seqNum
            == 0x1122_3344_5566_7788)
        #expect(try HeartbeatMsgData(decoding: [1, 0, 0, 0, 0, 0, 0, 0]).seqNum == 1)   // reserved area optional
        #expect(throws: ICRejection.truncatedBody(icmsgtype: 1, needed: 8, icmsgsize: 7)) {
            try HeartbeatMsgData(decoding: [1, 0, 0, 0, 0, 0, 0])
        }
        let shutdown = ShutdownMsgData(reasonCode: 0x8000_0000, timeoutSeconds: 30, flags: 3,
                                       displayMessage: Array("bye".utf8))
        let decoded = try ShutdownMsgData(decoding: shutdown.bytes)
        #expect(decoded.reasonCode == 0x8000_0000 && decoded.timeoutSeconds == 30 && decoded.flags == 3)
        #expect(decoded.displayMessage.prefix(4) == [0x62, 0x79, 0x65, 0])
        #expect(throws: ICRejection.truncatedBody(icmsgtype: 3, needed: 2060, icmsgsize: 2059)) {
            try ShutdownMsgData(decoding: Array(shutdown.bytes.dropLast()))
        }
    }

    /// Every cut of a valid message is refused with the error for where it was cut, and nothing traps.
    @Test func everyTruncationIsRefused() {
        let bytes = ICMessage.request(type: ICMsgType.heartbeat, framework: ICVersion(3, 0), message: ICVersion(3, 0),
                                      body: HeartbeatMsgData(seqNum: 5).bytes).bytes
        for count in 0..<bytes.count {
            let expected: ICRejection = switch count {
            case ..<8: .truncatedPipeHeader(count: count)
            case ..<28: .truncatedICMsgHeader(count: count)
            default: .messageSizePastEnd(icmsgsize: 40, available: count - 28)
            }
            #expect(throws: expected) { try ICMessage(decoding: Array(bytes.prefix(count))) }
        }
    }

    @Test func hostileBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<96, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if count > 19, Bool.random(using: &generator) { bytes[18] = UInt8(truncatingIfNeeded: count - 28); bytes[19] = 0 }
            if let message = try? ICMessage(decoding: bytes) {
                #expect(message.body.count == Int(message.header.icmsgsize))
                _ = try? ICNegotiate(decoding: message.body)
                _ = try? HeartbeatMsgData(decoding: message.body)
                _ = try? ShutdownMsgData(decoding: message.body)
            }
            var heartbeat = HeartbeatIC()
            _ = heartbeat.opened()
            _ = heartbeat.received(bytes, transactionID: 1, at: .now)
            var shutdown = ShutdownIC()
            _ = shutdown.opened()
            _ = shutdown.received(bytes, transactionID: 1)
        }
    }

    @Test func transactionIDsCountFromOne() {
        var ids = ICTransactionIDs()
        #expect([ids.next(), ids.next(), ids.next()] == [1, 2, 3])
    }
}
