import Testing
@testable import VSP

func exchange(_ ic: inout ShutdownIC, _ guest: inout LinuxHVUtilGuest, _ request: ICOutgoing) -> ICEvent? {
    guard let reply = guest.receive(request.payload, transactionID: request.transactionID) else { return nil }
    return ic.received(reply.payload, transactionID: reply.transactionID)
}

/// A shutdown IC negotiated with `guest`.
func readyShutdown(_ guest: inout LinuxHVUtilGuest) -> ShutdownIC {
    var ic = ShutdownIC()
    _ = exchange(&ic, &guest, ic.opened())
    return ic
}

@Suite struct ShutdownICTests {
    @Test func linuxGuestNegotiatesFramework3Shutdown3_2() {
        var ic = ShutdownIC()
        var guest = LinuxHVUtilGuest(.shutdown)
        #expect(ic.requestShutdown(kind: .powerOff) == nil)
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiated(framework: ICVersion(3, 0), message: ICVersion(3, 2)))
        #expect(guest.srvVersion == 0x0003_0002)
        #expect(ic.state == .ready(framework: ICVersion(3, 0), message: ICVersion(3, 2)))
    }

    @Test func powerOffRequestBytesAndAcceptance() throws {
        var guest = LinuxHVUtilGuest(.shutdown)
        var ic = readyShutdown(&guest)
        let made = ic.requestShutdown(kind: .powerOff, reason: 0x8000_0004)
        let request = try #require(made)
        let payload = request.payload
        #expect(payload.count == 28 + 2060)                               // within Linux's 4096-byte buffer
        #expect(le32(payload, 0) == 1 && le32(payload, 4) == 20 + 2060)    // vmbuspipe_hdr
        #expect(le16(payload, 8) == 3 && le16(payload, 10) == 0)           // icverframe 3.0
        #expect(le16(payload, 12) == 3)                                    // ICMSGTYPE_SHUTDOWN
        #expect(le16(payload, 14) == 3 && le16(payload, 16) == 2)          // icvermsg 3.2
        #expect(le16(payload, 18) == 2060)                                 // icmsgsize
        #expect(le32(payload, 20) == 0 && payload[24] == 0 && payload[25] == 3)
        #expect(le32(payload, 28) == 0x8000_0004)                          // reason_code
        #expect(le32(payload, 32) == 0)                                    // timeout_seconds
        #expect(le32(payload, 36) == 0)                                    // flags: power off
        #expect(payload[40...].allSatisfy { $0 == 0 })                     // display_message
        #expect(ic.shutdownPending)
        #expect(exchange(&ic, &guest, request) == .shutdownAccepted)
        #expect(guest.actions == ["poweroff"])
        #expect(!ic.shutdownPending)
    }

    @Test(arguments: [(ShutdownKind.powerOff, false, UInt32(0), "poweroff"), (.powerOff, true, 1, "poweroff"),
                      (.reboot, false, 2, "reboot"), (.reboot, true, 3, "reboot")])
    func kindsMapToTheFlagsLinuxReads(kind: ShutdownKind, force: Bool, flags: UInt32, action: String) throws {
        var guest = LinuxHVUtilGuest(.shutdown)
        var ic = readyShutdown(&guest)
        let made = ic.requestShutdown(kind: kind, force: force)
        let request = try #require(made)
        #expect(le32(request.payload, 36) == flags)
        #expect(le32(request.payload, 28) == ShutdownMsgData.reasonPlanned)
        #expect(exchange(&ic, &guest, request) == .shutdownAccepted)
        #expect(guest.actions == [action])
    }

    @Test func aGuestThatCannotRebootRefuses() {
        var guest = LinuxHVUtilGuest(.shutdown)
        guest.knowsRestart = false
        var ic = readyShutdown(&guest)
        #expect(exchange(&ic, &guest, ic.requestShutdown(kind: .reboot)!) == .shutdownRefused(status: ICStatus.hvEFail))
        #expect(guest.actions.isEmpty)
        #expect(!ic.shutdownPending)
        // The IC stays usable: power off still works.
        #expect(exchange(&ic, &guest, ic.requestShutdown(kind: .powerOff)!) == .shutdownAccepted)
    }

    @Test func oneRequestAtATime() {
        var guest = LinuxHVUtilGuest(.shutdown)
        var ic = readyShutdown(&guest)
        let first = ic.requestShutdown(kind: .powerOff)!
        #expect(ic.requestShutdown(kind: .reboot) == nil)
        #expect(exchange(&ic, &guest, first) == .shutdownAccepted)
        #expect(ic.requestShutdown(kind: .reboot) != nil)
    }

    @Test func guestWithNoCommonVersionFailsTheNegotiation() {
        var ic = ShutdownIC()
        var guest = LinuxHVUtilGuest(.shutdown)
        guest.fwVersions = [2 << 16]
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiationFailed(status: 0))
        #expect(ic.state == .failed)
        #expect(ic.requestShutdown(kind: .powerOff) == nil)
    }

    @Test func malformedRepliesAreRejected() {
        var guest = LinuxHVUtilGuest(.shutdown)
        var ic = readyShutdown(&guest)
        let request = ic.requestShutdown(kind: .powerOff)!
        let good = linuxReply(to: request, service: .shutdown)
        #expect(ic.received(Array(good.prefix(3)), transactionID: request.transactionID)
            == .rejected(.truncatedPipeHeader(count: 3)))
        #expect(ic.received(Array(good.prefix(20)), transactionID: request.transactionID)
            == .rejected(.truncatedICMsgHeader(count: 20)))
        #expect(ic.received(Array(good.prefix(100)), transactionID: request.transactionID)
            == .rejected(.messageSizePastEnd(icmsgsize: 2060, available: 72)))
        var reply = good
        put16(&reply, 12, ICMsgType.heartbeat)
        #expect(ic.received(reply, transactionID: request.transactionID)
            == .rejected(.wrongMessageType(expected: 3, got: 1)))
        reply = good
        reply[25] = 1
        #expect(ic.received(reply, transactionID: request.transactionID) == .rejected(.notAResponse(icflags: 1)))
        #expect(ic.received(good, transactionID: request.transactionID + 5)
            == .rejected(.unexpectedTransaction(request.transactionID + 5)))
        #expect(ic.rejectedReplies == 6)
        #expect(ic.shutdownPending)
        #expect(ic.received(good, transactionID: request.transactionID) == .shutdownAccepted)
        #expect(ic.received(good, transactionID: request.transactionID)
            == .rejected(.unexpectedTransaction(request.transactionID)))
    }

    @Test func closingForgetsThePendingRequest() {
        var guest = LinuxHVUtilGuest(.shutdown)
        var ic = readyShutdown(&guest)
        let request = ic.requestShutdown(kind: .powerOff)!
        ic.closed()
        #expect(!ic.shutdownPending)
        #expect(exchange(&ic, &guest, request) == .rejected(.channelNotOpen))
        #expect(exchange(&ic, &guest, ic.opened()) == .negotiated(framework: ICVersion(3, 0), message: ICVersion(3, 2)))
        #expect(exchange(&ic, &guest, ic.requestShutdown(kind: .reboot)!) == .shutdownAccepted)
    }
}
