import Testing
@testable import VSP

/// Sends `request` to the scripted guest and hands its reply to the IC.
func exchange(_ ic: inout HeartbeatIC, _ guest: inout LinuxHVUtilGuest, _ request: ICOutgoing,
              at now: ContinuousClock.Instant = .now) -> ICEvent? {
    guard let reply = guest.receive(request.payload, transactionID: request.transactionID) else { return nil }
    return ic.received(reply.payload, transactionID: reply.transactionID, at: now)
}

/// A heartbeat IC negotiated with a Linux 6.1 guest.
func readyHeartbeat(firstSeq: UInt64 = 0) -> (HeartbeatIC, LinuxHVUtilGuest) {
    var ic = HeartbeatIC(firstSeq: firstSeq)
    var guest = LinuxHVUtilGuest(.heartbeat)
    _ = exchange(&ic, &guest, ic.opened())
    return (ic, guest)
}

/// A valid reply to `request`, built the way Linux builds it, for tests to damage.
func linuxReply(to request: ICOutgoing, service: LinuxHVUtilGuest.Service = .heartbeat) -> [UInt8] {
    var guest = LinuxHVUtilGuest(service)
    return guest.receive(request.payload, transactionID: request.transactionID)!.payload
}

@Suite struct HeartbeatICTests {
    @Test func linuxGuestNegotiatesThreeDotZero() {
        var ic = HeartbeatIC()
        var guest = LinuxHVUtilGuest(.heartbeat)
        #expect(ic.state == .closed)
        #expect(ic.tick() == nil)
        let request = ic.opened()
        #expect(ic.state == .negotiating)
        #expect(ic.tick() == nil)
        let reply = guest.receive(request.payload, transactionID: request.transactionID)!
        #expect(reply.transactionID == request.transactionID)
        #expect(reply.payload.count == 56)                           // 52 bytes padded to 8, as recvlen is
        #expect(le16(reply.payload, 18) == 0x10)                     // icmsgsize rewritten by Linux
        let event = ic.received(reply.payload, transactionID: reply.transactionID, at: .now)
        #expect(event == .negotiated(framework: ICVersion(3, 0), message: ICVersion(3, 0)))
        #expect(ic.state == .ready(framework: ICVersion(3, 0), message: ICVersion(3, 0)))
        #expect(guest.srvVersion == 0x0003_0000)
    }

    @Test func olderGuestNegotiatesOneDotZero() {
        var ic = HeartbeatIC()
        var guest = LinuxHVUtilGuest(.heartbeat)
        guest.fwVersions = [1 << 16]
        guest.srvVersions = [1 << 16]
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiated(framework: ICVersion(1, 0), message: ICVersion(1, 0)))
        let request = ic.tick()!
        #expect(le16(request.payload, 8) == 1 && le16(request.payload, 14) == 1)   // icverframe, icvermsg 1.0
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
    }

    @Test func guestWithNoCommonVersionFailsTheNegotiation() {
        var ic = HeartbeatIC()
        var guest = LinuxHVUtilGuest(.heartbeat)
        guest.srvVersions = [4 << 16]
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiationFailed(status: 0))
        #expect(ic.state == .failed)
        #expect(ic.tick() == nil)
        // Reopening starts over.
        guest.srvVersions = LinuxHVUtilGuest.hbVersions
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiated(framework: ICVersion(3, 0), message: ICVersion(3, 0)))
    }

    @Test func heartbeatsAreCountedWithTheirSequence() throws {
        var (ic, guest) = readyHeartbeat(firstSeq: 100)
        let start = ContinuousClock.now
        for index in 0..<5 {
            let next = ic.tick()
            let request = try #require(next)
            #expect(le16(request.payload, 12) == 1)                      // ICMSGTYPE_HEARTBEAT
            #expect(le16(request.payload, 18) == 40)                     // icmsgsize: heartbeat_msg_data
            #expect(request.payload.count == 68)
            #expect(le64(request.payload, 28) == 100 + UInt64(index))    // seq_num
            let event = exchange(&ic, &guest, request, at: start + .seconds(2 * index))
            #expect(event == .heartbeat(seq: 101 + UInt64(index)))
        }
        #expect(ic.acceptedHeartbeats == 5)
        #expect(ic.lastSeq == 105)
        #expect(ic.lastHeartbeatAt == start + .seconds(8))
        #expect(ic.missedHeartbeats == 0 && ic.rejectedReplies == 0)
    }

    @Test func sequenceNumbersWrap() {
        var (ic, guest) = readyHeartbeat(firstSeq: .max)
        #expect(exchange(&ic, &guest, ic.tick()!) == .heartbeat(seq: 0))
        #expect(exchange(&ic, &guest, ic.tick()!) == .heartbeat(seq: 1))
    }

    @Test func anUnansweredHeartbeatIsMissedAndItsLateAnswerRejected() {
        var (ic, guest) = readyHeartbeat()
        let first = ic.tick()!
        let second = ic.tick()!
        #expect(ic.missedHeartbeats == 1)
        #expect(exchange(&ic, &guest, first) == .rejected(.unexpectedTransaction(first.transactionID)))
        #expect(exchange(&ic, &guest, second) == .heartbeat(seq: 2))
        #expect(ic.acceptedHeartbeats == 1 && ic.rejectedReplies == 1)
    }

    @Test func closingDropsTheOutstandingHeartbeat() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        ic.closed()
        #expect(ic.state == .closed)
        #expect(ic.missedHeartbeats == 1)
        #expect(exchange(&ic, &guest, request) == .rejected(.channelNotOpen))
    }

    // One test per kind of malformed reply. Each leaves the request outstanding or consumed as stated, and the
    // real answer afterwards shows the IC still works.

    @Test func truncatedPipeHeaderIsRejected() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        let reply = linuxReply(to: request)
        #expect(ic.received(Array(reply.prefix(5)), transactionID: request.transactionID, at: .now)
            == .rejected(.truncatedPipeHeader(count: 5)))
        #expect(ic.received([], transactionID: request.transactionID, at: .now)
            == .rejected(.truncatedPipeHeader(count: 0)))
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
        #expect(ic.rejectedReplies == 2)
    }

    @Test func truncatedICHeaderIsRejected() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        let reply = linuxReply(to: request)
        #expect(ic.received(Array(reply.prefix(27)), transactionID: request.transactionID, at: .now)
            == .rejected(.truncatedICMsgHeader(count: 27)))
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
    }

    @Test func messageSizePastTheEndIsRejected() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        #expect(reply.count == 72)
        put16(&reply, 18, 45)                                            // 28 + 45 > 72
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.messageSizePastEnd(icmsgsize: 45, available: 44)))
        put16(&reply, 18, 0xFFFF)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.messageSizePastEnd(icmsgsize: 0xFFFF, available: 44)))
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
    }

    @Test func bodyTooShortForASequenceNumberIsRejected() {
        var (ic, _) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        put16(&reply, 18, 4)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.truncatedBody(icmsgtype: 1, needed: 8, icmsgsize: 4)))
    }

    @Test func wrongMessageTypeIsRejected() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        put16(&reply, 12, ICMsgType.shutdown)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.wrongMessageType(expected: 1, got: 3)))
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
    }

    @Test func wrongSequenceNumberIsRejected() {
        var (ic, guest) = readyHeartbeat(firstSeq: 7)
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        #expect(le64(reply, 28) == 8)
        put64(&reply, 28, 7)                                             // not incremented
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.wrongSequence(expected: 8, got: 7)))
        #expect(ic.acceptedHeartbeats == 0 && ic.lastSeq == nil && ic.lastHeartbeatAt == nil)
        // The guest answered that transaction (wrongly): it is consumed; the next heartbeat works.
        #expect(exchange(&ic, &guest, request) == .rejected(.unexpectedTransaction(request.transactionID)))
        #expect(exchange(&ic, &guest, ic.tick()!) == .heartbeat(seq: 9))
        #expect(ic.missedHeartbeats == 0)
    }

    @Test func replyWithoutResponseFlagIsRejected() {
        var (ic, _) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        reply[25] = ICMsgHdrFlag.transaction | ICMsgHdrFlag.request
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now) == .rejected(.notAResponse(icflags: 3)))
        // Our own request echoed back unchanged is not an answer either.
        #expect(ic.received(request.payload, transactionID: request.transactionID, at: .now)
            == .rejected(.notAResponse(icflags: 3)))
    }

    @Test func wrongTransactionIDsAreRejected() {
        var (ic, guest) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        #expect(ic.received(reply, transactionID: request.transactionID + 1, at: .now)
            == .rejected(.unexpectedTransaction(request.transactionID + 1)))
        reply[24] = 9
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.wrongICTransactionID(expected: 0, got: 9)))
        #expect(exchange(&ic, &guest, request) == .heartbeat(seq: 1))
    }

    @Test func failureStatusIsRejected() {
        var (ic, _) = readyHeartbeat()
        let request = ic.tick()!
        var reply = linuxReply(to: request)
        put32(&reply, 20, ICStatus.hvEFail)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.failedStatus(0x8000_4005)))
    }

    @Test func malformedNegotiateRepliesAreRejected() {
        var ic = HeartbeatIC()
        let request = ic.opened()
        let good = linuxReply(to: request)
        var reply = good
        put16(&reply, 36, 2)                                             // guest "chose" framework 2.0
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.versionNotOffered(framework: ICVersion(2, 0), message: ICVersion(3, 0))))
        reply = good
        put16(&reply, 28, 2)                                             // counts 2 / 1
        put16(&reply, 18, 20)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.badNegotiateCounts(framework: 2, message: 1)))
        reply = good
        put16(&reply, 18, 12)                                            // icmsgsize too small for two versions
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.truncatedBody(icmsgtype: 0, needed: 16, icmsgsize: 12)))
        reply = good
        put16(&reply, 12, ICMsgType.heartbeat)
        #expect(ic.received(reply, transactionID: request.transactionID, at: .now)
            == .rejected(.wrongMessageType(expected: 0, got: 1)))
        #expect(ic.received(good, transactionID: 99, at: .now) == .rejected(.unexpectedTransaction(99)))
        #expect(ic.state == .negotiating)
        #expect(ic.rejectedReplies == 5)
        #expect(ic.received(good, transactionID: request.transactionID, at: .now)
            == .negotiated(framework: ICVersion(3, 0), message: ICVersion(3, 0)))
        // A second copy of the negotiate reply is no longer expected.
        #expect(ic.received(good, transactionID: request.transactionID, at: .now)
            == .rejected(.unexpectedTransaction(request.transactionID)))
    }

    @Test func repliesBeforeOpenAreRejected() {
        var ic = HeartbeatIC()
        var other = HeartbeatIC()
        let reply = linuxReply(to: other.opened())
        #expect(ic.received(reply, transactionID: 1, at: .now) == .rejected(.channelNotOpen))
        #expect(ic.rejectedReplies == 1)
    }
}
