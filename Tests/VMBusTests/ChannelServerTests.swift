import Testing
@testable import VMBus

// The channel server fed the message sequences Linux 6.1's hv_vmbus sends (drivers/hv/connection.c,
// channel_mgmt.c, channel.c), and hostile variations of them. Every expectation names the exact actions.

/// Guest RAM for these tests: page numbers 0x100 … 0xFFFFF.
private let guestPages: ClosedRange<UInt64> = 0x100...0xF_FFFF

private let heartbeatInstance = GUID("11111111-2222-3333-4444-555555555555")!
private let networkInstance = GUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")!

/// Channel 1: heartbeat; channel 2: a NIC with flags and user-defined bytes.
private let devices = [
    ChannelOfferSpec(interfaceType: .heartbeat, interfaceInstance: heartbeatInstance),
    ChannelOfferSpec(interfaceType: .network, interfaceInstance: networkInstance,
                     flags: [.enumerateDeviceInterface], userDefined: [0xAB, 0xCD]),
]

private let accepted53 = ChannelServerAction.send(.versionResponse(
    VersionResponse(versionSupported: true, connectionState: 0, messageConnectionID: 1)))
private let refusal = ChannelServerAction.send(.versionResponse(
    VersionResponse(versionSupported: false, connectionState: 0, messageConnectionID: 0)))

/// INITIATE_CONTACT as vmbus_negotiate_version builds it: from 5.0 msg_sint in byte 16, below it the
/// interrupt page GPA; the two monitor pages; target_vcpu.
private func contact(_ version: VMBusVersion, targetVP: UInt32 = 0, sint: UInt8 = 2, vtl: UInt8 = 0) -> ChannelMessage {
    let field = version >= .win10V5 ? UInt64(sint) | UInt64(vtl) << 8 : 0x0123_4000
    return .initiateContact(InitiateContact(versionRequested: version, targetVP: targetVP,
                                            interruptPageOrMessageSINT: field,
                                            monitorPage1: 0x14A_3000, monitorPage2: 0x14A_4000))
}

/// A ring GPADL's one range as Linux's create_gpadl_header makes it: byte_offset 0, whole pages.
private func ring(_ pages: [UInt64]) -> GPARange {
    GPARange(byteCount: UInt32(pages.count * 4096), byteOffset: 0, pageNumbers: pages)
}

/// `count` scattered guest pages starting at `base`.
private func pages(_ count: Int, base: UInt64 = 0x5000) -> [UInt64] { (0..<count).map { base + UInt64($0) * 3 } }

private func gpadlCreated(_ relID: UInt32, _ handle: UInt32, ok: Bool = true) -> ChannelServerAction {
    .send(.gpadlCreated(GPADLCreated(childRelID: relID, gpadl: handle, status: ok ? 0 : ChannelServer.statusUnsuccessful)))
}

private func openFailed(_ relID: UInt32, openID: UInt32? = nil) -> ChannelServerAction {
    .send(.openChannelResult(OpenChannelResult(childRelID: relID, openID: openID ?? relID,
                                               status: ChannelServer.statusUnsuccessful)))
}

private func torndown(_ handle: UInt32) -> ChannelServerAction { .send(.gpadlTorndown(GPADLTorndown(gpadl: handle))) }

private func rescinded(_ relID: UInt32) -> ChannelServerAction {
    .send(.rescindChannelOffer(RescindChannelOffer(childRelID: relID)))
}

/// Whether the actions are exactly `expected` followed by one `.rejected`.
private func isRejection(_ actions: [ChannelServerAction], after expected: [ChannelServerAction] = []) -> Bool {
    guard actions.count == expected.count + 1, Array(actions.prefix(expected.count)) == expected,
          case .rejected = actions.last else { return false }
    return true
}

/// A server and the guest that talks to it.
private struct Guest {
    var server: ChannelServer

    init(devices: [ChannelOfferSpec] = devices, limits: ChannelServer.Limits = .init()) {
        server = ChannelServer(offers: devices, limits: limits, isGuestPage: { guestPages.contains($0) })
    }

    /// Everything the server holds, as text: equal before and after means the input changed nothing.
    var snapshot: String { String(describing: server) }

    mutating func post(_ message: ChannelMessage, on connectionID: UInt32 = 1) -> [ChannelServerAction] {
        server.receive(message.bytes, connectionID: connectionID)
    }

    /// Contact on the connection Linux uses for `version`, which must be accepted.
    mutating func connect(_ version: VMBusVersion = .win10V5_3) {
        let actions = post(contact(version), on: version.contactsOnConnection4 ? 4 : 1)
        #expect(actions.count == 1 && actions.first != refusal)
        #expect(server.version == version)
    }

    /// Contact and REQUESTOFFERS.
    mutating func boot(_ version: VMBusVersion = .win10V5_3) {
        connect(version)
        #expect(post(.requestOffers).last == .send(.allOffersDelivered))
    }

    /// GPADL_HEADER and the GPADL_BODY messages Linux would send for `ranges`; the actions of all of them.
    mutating func createGPADL(_ handle: UInt32, relID: UInt32, ranges: [GPARange]) -> [ChannelServerAction] {
        guard let (header, bodies) = try? GPADLHeader.messages(childRelID: relID, gpadl: handle, ranges: ranges) else {
            Issue.record("cannot encode the GPADL")
            return []
        }
        return bodies.reduce(post(.gpadlHeader(header))) { $0 + post(.gpadlBody($1)) }
    }

    /// A ring GPADL of `pageCount` pages (must succeed) and OPENCHANNEL with the downstream ring at `offset`.
    mutating func requestOpen(_ relID: UInt32, handle: UInt32, pageCount: Int = 40, offset: UInt32 = 20,
                              targetVP: UInt32 = 0) -> [ChannelServerAction] {
        #expect(createGPADL(handle, relID: relID, ranges: [ring(pages(pageCount))]) == [gpadlCreated(relID, handle)])
        return post(.openChannel(OpenChannel(childRelID: relID, openID: relID, ringBufferGPADL: handle,
                                             targetVP: targetVP, downstreamRingBufferPageOffset: offset)))
    }

    /// A channel opened the whole way.
    mutating func open(_ relID: UInt32, handle: UInt32) {
        let actions = requestOpen(relID, handle: handle)
        #expect(actions.count == 1)
        guard case .open = actions.first else {
            Issue.record("no open: \(actions)")
            return
        }
        #expect(server.openCompleted(childRelID: relID, status: 0)
                == [.send(.openChannelResult(OpenChannelResult(childRelID: relID, openID: relID, status: 0)))])
    }
}

@Suite struct ChannelServerTests {
    // MARK: - What Linux 6.1 sends

    /// Boot, one channel opened and closed, unload: the sequence of vmbus_connect, vmbus_request_offers,
    /// vmbus_open (ring GPADL of 40 pages: a header with 26 PFNs and one body), vmbus_close and
    /// vmbus_initiate_unload.
    @Test func linuxBootOpenCloseUnload() throws {
        var guest = Guest()
        // The exact bytes vmbus_negotiate_version posts for 5.3 on VMBUS_MESSAGE_CONNECTION_ID_4.
        let linuxContact: [UInt8] = [
            0x0E, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x00, 0x05, 0x00, 0, 0, 0, 0,
            0x02, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x30, 0x4A, 0x01, 0, 0, 0, 0, 0x00, 0x40, 0x4A, 0x01, 0, 0, 0, 0,
        ]
        let response = guest.server.receive(linuxContact, connectionID: 4)
        #expect(response == [accepted53])
        guard case .send(let message) = response.first else { return }
        // version_supported 1, connection_state 0, msg_conn_id 1: Linux posts everything else there.
        #expect(message.bytes == [15, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
        #expect(guest.server.version == .win10V5_3)
        #expect(guest.server.messageSINT == 2 && guest.server.messageTargetVP == 0)

        let offers = guest.post(.requestOffers)
        #expect(offers == [
            .send(.offerChannel(OfferChannel(interfaceType: .heartbeat, interfaceInstance: heartbeatInstance,
                                             childRelID: 1, connectionID: 0x2001))),
            .send(.offerChannel(OfferChannel(interfaceType: .network, interfaceInstance: networkInstance,
                                             flags: [.enumerateDeviceInterface], userDefined: [0xAB, 0xCD],
                                             childRelID: 2, connectionID: 0x2002))),
            .send(.allOffersDelivered),
        ])
        #expect(guest.server.connectionID(ofChannel: 2) == 0x2002)
        if case .send(let offer) = offers[1] {
            let bytes = offer.bytes
            #expect(bytes.count == 196)
            #expect(bytes[60] == 0xAB && bytes[61] == 0xCD && bytes[62] == 0)     // user_defined, zero-padded
            #expect(bytes[184] == 2 && bytes[188] == 0xFF && bytes[189] == 0)     // relid, no monitor
            #expect(bytes[190] == 1 && Array(bytes[192..<196]) == [0x02, 0x20, 0, 0])
        }

        // vmbus_open: the ring GPADL, then OPENCHANNEL with downstream offset = send pages.
        let ringPages = pages(40)
        let (header, bodies) = try GPADLHeader.messages(childRelID: 2, gpadl: 0xE1E10, ranges: [ring(ringPages)])
        #expect(bodies.count == 1)
        #expect(guest.post(.gpadlHeader(header)) == [])
        #expect(guest.post(.gpadlBody(bodies[0])) == [gpadlCreated(2, 0xE1E10)])
        #expect(guest.server.gpadl(0xE1E10, ofChannel: 2) == [ring(ringPages)])
        #expect(guest.server.gpadl(0xE1E10, ofChannel: 1) == nil)
        let open = OpenChannel(childRelID: 2, openID: 2, ringBufferGPADL: 0xE1E10, targetVP: 1,
                               downstreamRingBufferPageOffset: 20, userData: [7])
        let request = ChannelOpenRequest(
            childRelID: 2, openID: 2, connectionID: 0x2002, ringPages: ringPages, downstreamPageOffset: 20,
            targetVP: 1, userData: [7] + [UInt8](repeating: 0, count: 119))
        #expect(guest.post(.openChannel(open)) == [.open(request)])
        #expect(request.outboundRingPages == ringPages[0..<20])
        #expect(request.inboundRingPages == ringPages[20..<40])
        #expect(guest.server.openCompleted(childRelID: 2, status: 0)
                == [.send(.openChannelResult(OpenChannelResult(childRelID: 2, openID: 2, status: 0)))])

        // vmbus_close_internal: CLOSECHANNEL, then the ring GPADL's teardown.
        #expect(guest.post(.closeChannel(CloseChannel(childRelID: 2))) == [.close(childRelID: 2)])
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 0xE1E10))) == [torndown(0xE1E10)])
        #expect(guest.server.gpadl(0xE1E10, ofChannel: 2) == nil)

        // vmbus_initiate_unload, then (kexec) the next kernel's contact and the same offers again.
        #expect(guest.post(.unload) == [.disconnected, .send(.unloadResponse)])
        #expect(guest.server.version == nil)
        #expect(guest.post(.requestOffers).count == 1)
        #expect(guest.post(contact(.win10V5_3), on: 4) == [accepted53])
        #expect(guest.post(.requestOffers) == offers)
    }

    /// MODIFYCHANNEL on 5.3: the retarget comes before the acknowledgement Linux waits for.
    @Test func modifyChannelOn53IsAcknowledgedAfterTheRetarget() {
        var guest = Guest()
        guest.boot()
        guest.open(1, handle: 0xE1E10)
        #expect(guest.post(.modifyChannel(ModifyChannel(childRelID: 1, targetVP: 3)))
                == [.retarget(childRelID: 1, targetVP: 3),
                    .send(.modifyChannelResponse(ModifyChannelResponse(childRelID: 1, status: 0)))])
        // Not open: refused, and still answered so that a waiting guest goes on.
        #expect(isRejection(guest.post(.modifyChannel(ModifyChannel(childRelID: 2, targetVP: 3))), after: [
            .send(.modifyChannelResponse(ModifyChannelResponse(
                childRelID: 2, status: Int32(bitPattern: ChannelServer.statusUnsuccessful)))),
        ]))
    }

    /// Below 5.3 Hyper-V never acknowledges MODIFYCHANNEL; below 4.1 there is no MODIFYCHANNEL.
    @Test func modifyChannelBelow53IsNotAcknowledged() {
        var guest = Guest()
        guest.boot(.win10V5_2)
        guest.open(1, handle: 7)
        #expect(guest.post(.modifyChannel(ModifyChannel(childRelID: 1, targetVP: 2))) == [.retarget(childRelID: 1, targetVP: 2)])
        #expect(isRejection(guest.post(.modifyChannel(ModifyChannel(childRelID: 2, targetVP: 2)))))

        var old = Guest()
        old.boot(.win10)
        old.open(1, handle: 7)
        let before = old.snapshot
        #expect(isRejection(old.post(.modifyChannel(ModifyChannel(childRelID: 1, targetVP: 2)))))
        #expect(old.snapshot == before)
    }

    // MARK: - Version negotiation

    @Test(arguments: VMBusVersion.linux61Requests)
    func everyVersionLinuxAsksForIsAcceptedOnItsConnection(version: VMBusVersion) {
        var guest = Guest()
        let connectionID: UInt32 = version.contactsOnConnection4 ? 4 : 1
        // Below 5.0 the response carries the version (as OpenVMM's); Linux reads msg_conn_id only from 5.0.
        let messageConnectionID = version >= .win10V5 ? 1 : version.rawValue
        #expect(guest.post(contact(version), on: connectionID) == [.send(.versionResponse(
            VersionResponse(versionSupported: true, connectionState: 0, messageConnectionID: messageConnectionID)))])
        #expect(guest.server.version == version)
    }

    /// A newer Linux asks for 6.0 ("Copper") first and walks down: refused without complaint, 5.3 accepted.
    @Test func newerVersionsAreRefusedAndTheGuestWalksDown() {
        var guest = Guest()
        #expect(guest.post(contact(VMBusVersion(major: 6, minor: 0)), on: 4) == [refusal])
        #expect(guest.server.version == nil)
        #expect(guest.post(contact(.win10V5_3), on: 4) == [accepted53])
    }

    /// Versions hv does not speak are refused (version_supported = 0), so Linux tries its next one.
    @Test(arguments: [VMBusVersion.ws2008, .win7, VMBusVersion(rawValue: 0), VMBusVersion(major: 4, minor: 2),
                      VMBusVersion(major: 5, minor: 4), VMBusVersion(major: 2, minor: 0), VMBusVersion(rawValue: .max)])
    func unknownAndOlderVersionsAreRefused(version: VMBusVersion) {
        var guest = Guest()
        #expect(guest.post(contact(version), on: version.contactsOnConnection4 ? 4 : 1) == [refusal])
        #expect(guest.server.version == nil)
        #expect(isRejection(guest.post(.requestOffers)))
    }

    /// From 5.0 contact must come on connection 4 and below 5.0 on 1 (vmbus_negotiate_version); the wrong one is
    /// refused and counted, and the guest can still go on to a version that fits.
    @Test func contactOnTheWrongConnectionIsRefused() {
        var guest = Guest()
        #expect(isRejection(guest.post(contact(.win10V5_3), on: 1), after: [refusal]))
        #expect(isRejection(guest.post(contact(.win10V5), on: 1), after: [refusal]))
        #expect(isRejection(guest.post(contact(.win10V4_1), on: 4), after: [refusal]))
        #expect(guest.server.version == nil)
        #expect(guest.post(contact(.win10V4_1), on: 1) == [.send(.versionResponse(
            VersionResponse(versionSupported: true, messageConnectionID: VMBusVersion.win10V4_1.rawValue)))])
        #expect(guest.server.version == .win10V4_1)
    }

    /// target_vcpu counts from 3.0 on, msg_sint from 5.0 on (OpenVMM handle_initiate_contact).
    @Test func messageTargetFollowsTheContact() {
        var guest = Guest()
        _ = guest.post(contact(.win8, targetVP: 3))
        #expect(guest.server.version == .win8 && guest.server.messageTargetVP == 0 && guest.server.messageSINT == 2)
        _ = guest.post(contact(.win8_1, targetVP: 3))
        #expect(guest.server.version == .win8_1 && guest.server.messageTargetVP == 3 && guest.server.messageSINT == 2)
        _ = guest.post(contact(.win10V5_1, targetVP: 5, sint: 7), on: 4)
        #expect(guest.server.version == .win10V5_1 && guest.server.messageTargetVP == 5 && guest.server.messageSINT == 7)
        // Kept after the unload, so UNLOAD_RESPONSE goes where the guest polls for it.
        #expect(guest.post(.unload) == [.disconnected, .send(.unloadResponse)])
        #expect(guest.server.messageTargetVP == 5 && guest.server.messageSINT == 7)
    }

    @Test func contactWithAnImpossibleSINTOrVTLIsRefused() {
        var guest = Guest()
        #expect(isRejection(guest.post(contact(.win10V5_3, sint: 16), on: 4), after: [refusal]))
        #expect(guest.server.messageSINT == 2 && guest.server.version == nil)
        #expect(isRejection(guest.post(contact(.win10V5_3, vtl: 2), on: 4), after: [refusal]))
        #expect(guest.server.version == nil)
    }

    /// A contact while connected is a reconnect (a kexec'd kernel on a connection below 3.0 sends no UNLOAD):
    /// everything is closed and dropped before the answer.
    @Test func contactWhileConnectedStartsOver() {
        var guest = Guest()
        guest.boot(.win8)
        guest.open(2, handle: 0xE1E10)
        #expect(guest.createGPADL(0xE1E11, relID: 1, ranges: [ring(pages(4))]) == [gpadlCreated(1, 0xE1E11)])
        #expect(guest.post(contact(.win10V5_3), on: 4) == [.close(childRelID: 2), .disconnected, accepted53])
        #expect(guest.server.gpadl(0xE1E11, ofChannel: 1) == nil)
        #expect(isRejection(guest.post(.closeChannel(CloseChannel(childRelID: 2)))))
        #expect(guest.post(.requestOffers).count == 3)
        // The old handles are free again.
        #expect(guest.createGPADL(0xE1E10, relID: 2, ranges: [ring(pages(4))]) == [gpadlCreated(2, 0xE1E10)])
    }

    // MARK: - Unload

    /// An open in flight is never cut short: the unload waits for it and closes what it opened.
    @Test func unloadWaitsForAnOpenInFlight() {
        var guest = Guest()
        guest.boot()
        guard case .open = guest.requestOpen(2, handle: 0xE1E10).first else {
            Issue.record("no open")
            return
        }
        #expect(guest.post(.unload) == [])
        #expect(isRejection(guest.post(.requestOffers)))
        #expect(guest.server.openCompleted(childRelID: 2, status: 0)
                == [.close(childRelID: 2), .disconnected, .send(.unloadResponse)])
        #expect(guest.post(contact(.win10V5_3), on: 4) == [accepted53])

        var failing = Guest()
        failing.boot()
        _ = failing.requestOpen(1, handle: 9)
        #expect(failing.post(.unload) == [])
        #expect(failing.server.openCompleted(childRelID: 1, status: 1) == [.disconnected, .send(.unloadResponse)])
    }

    @Test func unloadBeforeContactIsAnswered() {
        var guest = Guest()
        #expect(guest.post(.unload) == [.send(.unloadResponse)])
        #expect(guest.server.version == nil)
    }

    // MARK: - Rescind

    /// Linux after RESCINDCHANNELOFFER: CLOSECHANNEL (it had the channel open), no GPADL_TEARDOWN, RELID_RELEASED.
    @Test func rescindOfAnOpenChannel() {
        var guest = Guest()
        guest.boot()
        guest.open(2, handle: 0xE1E10)
        #expect(guest.createGPADL(0xE1E11, relID: 2, ranges: [ring(pages(8, base: 0x9000))]) == [gpadlCreated(2, 0xE1E11)])
        #expect(guest.server.rescind(childRelID: 2) == [.close(childRelID: 2), rescinded(2)])
        #expect(guest.server.connectionID(ofChannel: 2) == nil)
        #expect(guest.post(.closeChannel(CloseChannel(childRelID: 2))) == [])
        // A GPADL created in the race fails; an open too.
        #expect(isRejection(guest.createGPADL(0xE1E12, relID: 2, ranges: [ring(pages(4))]), after: [gpadlCreated(2, 0xE1E12, ok: false)]))
        #expect(isRejection(guest.post(.openChannel(OpenChannel(childRelID: 2, openID: 2, ringBufferGPADL: 0xE1E10,
                                                               targetVP: 0, downstreamRingBufferPageOffset: 20))),
                            after: [openFailed(2)]))
        #expect(guest.post(.relIDReleased(RelIDReleased(childRelID: 2))) == [])
        #expect(guest.server.gpadl(0xE1E10, ofChannel: 2) == nil && guest.server.gpadl(0xE1E11, ofChannel: 2) == nil)
        #expect(isRejection(guest.post(.relIDReleased(RelIDReleased(childRelID: 2)))))
        #expect(isRejection(guest.server.rescind(childRelID: 2)))
        // Removed for good: not offered after a reconnect.
        #expect(guest.post(.unload) == [.disconnected, .send(.unloadResponse)])
        _ = guest.post(contact(.win10V5_3), on: 4)
        #expect(guest.post(.requestOffers) == [
            .send(.offerChannel(OfferChannel(interfaceType: .heartbeat, interfaceInstance: heartbeatInstance,
                                             childRelID: 1, connectionID: 0x2001))),
            .send(.allOffersDelivered),
        ])
    }

    @Test func rescindOfAClosedChannel() {
        var guest = Guest()
        guest.boot()
        #expect(guest.createGPADL(5, relID: 1, ranges: [ring(pages(4))]) == [gpadlCreated(1, 5)])
        #expect(guest.server.rescind(childRelID: 1) == [rescinded(1)])
        // Nothing was open: a stray close is not answered but not an error either.
        #expect(guest.post(.closeChannel(CloseChannel(childRelID: 1))) == [])
        // A guest that does tear down gets its answer.
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 5))) == [torndown(5)])
        #expect(guest.post(.relIDReleased(RelIDReleased(childRelID: 1))) == [])
        #expect(isRejection(guest.server.rescind(childRelID: 3)))
        #expect(isRejection(guest.server.rescind(childRelID: 0)))
    }

    @Test func rescindBeforeTheOffersRemovesTheDeviceQuietly() {
        var guest = Guest()
        #expect(guest.server.rescind(childRelID: 1) == [])
        guest.connect()
        #expect(guest.post(.requestOffers).count == 2)     // the NIC and ALLOFFERS_DELIVERED
    }

    @Test func rescindWhileOpeningClosesWhenTheOpenCompletes() {
        var guest = Guest()
        guest.boot()
        _ = guest.requestOpen(2, handle: 0xE1E10)
        #expect(guest.server.rescind(childRelID: 2) == [rescinded(2)])
        // Linux stopped waiting for OPENCHANNEL_RESULT when the rescind came.
        #expect(guest.server.openCompleted(childRelID: 2, status: 0) == [.close(childRelID: 2)])
        #expect(guest.post(.relIDReleased(RelIDReleased(childRelID: 2))) == [])
    }

    /// Linux releases a relid it could not register a device for (vmbus_add_channel_work err_deq_chan); the
    /// device is offered again after a reconnect. An open channel's relid cannot be released.
    @Test func releasingARelIDWithoutRescind() {
        var guest = Guest()
        guest.boot()
        guest.open(2, handle: 3)
        #expect(isRejection(guest.post(.relIDReleased(RelIDReleased(childRelID: 2)))))
        #expect(guest.post(.relIDReleased(RelIDReleased(childRelID: 1))) == [])
        #expect(isRejection(guest.post(.gpadlHeader(GPADLHeader(childRelID: 1, gpadl: 4, rangeBufferLength: 16,
                                                                rangeCount: 1, rangeWords: [4096, 0x5000]))),
                            after: [gpadlCreated(1, 4, ok: false)]))
        #expect(guest.post(.unload) == [.close(childRelID: 2), .disconnected, .send(.unloadResponse)])
        guest.connect()
        #expect(guest.post(.requestOffers).count == 3)
    }

    // MARK: - Hostile input

    @Test(arguments: ChannelMessageType.allCases.filter { $0.fixedSize > ChannelMessageHeader.size })
    func truncatedMessagesChangeNothing(type: ChannelMessageType) {
        var guest = Guest()
        guest.connect()
        let before = guest.snapshot
        let bytes = [UInt8(type.rawValue), 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: type.fixedSize - 9)
        #expect(isRejection(guest.server.receive(bytes, connectionID: type == .initiateContact ? 4 : 1)))
        #expect(guest.snapshot == before)
    }

    @Test(arguments: [UInt32(0), 18, 19, 20, 25, 29, 0x100, .max])
    func unknownMessageTypesChangeNothing(type: UInt32) {
        var guest = Guest()
        guest.boot()
        let before = guest.snapshot
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) } + [UInt8](repeating: 0, count: 60)
        #expect(isRejection(guest.server.receive(bytes, connectionID: 1)))
        #expect(guest.snapshot == before)
    }

    @Test func emptyShortAndOversizedPayloadsChangeNothing() {
        var guest = Guest()
        guest.boot()
        let before = guest.snapshot
        #expect(isRejection(guest.server.receive([], connectionID: 1)))
        #expect(isRejection(guest.server.receive([3, 0, 0], connectionID: 1)))
        #expect(isRejection(guest.server.receive([3, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 233), connectionID: 1)))
        #expect(guest.snapshot == before)
    }

    private static let hostToGuestMessages: [ChannelMessage] = [
        .offerChannel(OfferChannel(interfaceType: .kvp, interfaceInstance: .zero, childRelID: 1, connectionID: 0x2001)),
        .rescindChannelOffer(RescindChannelOffer(childRelID: 1)),
        .allOffersDelivered,
        .openChannelResult(OpenChannelResult(childRelID: 1, openID: 1, status: 0)),
        .gpadlCreated(GPADLCreated(childRelID: 1, gpadl: 1, status: 0)),
        .gpadlTorndown(GPADLTorndown(gpadl: 1)),
        .versionResponse(VersionResponse(versionSupported: true, messageConnectionID: 1)),
        .unloadResponse,
        .tlConnectResult(TLConnectResult(endpointID: .kvp, serviceID: .vss, status: 0)),
        .modifyChannelResponse(ModifyChannelResponse(childRelID: 1, status: 0)),
    ]

    @Test(arguments: hostToGuestMessages)
    func hostToGuestMessagesFromTheGuestChangeNothing(message: ChannelMessage) {
        var guest = Guest()
        guest.boot()
        guest.open(1, handle: 1)
        let before = guest.snapshot
        #expect(isRejection(guest.post(message)))
        #expect(guest.snapshot == before)
    }

    private static let guestToHostMessages: [ChannelMessage] = [
        .requestOffers,
        .gpadlHeader(GPADLHeader(childRelID: 1, gpadl: 1, rangeBufferLength: 16, rangeCount: 1, rangeWords: [4096, 0x5000])),
        .gpadlBody(GPADLBody(messageNumber: 1, gpadl: 1, rangeWords: [0x5000])),
        .gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 1)),
        .openChannel(OpenChannel(childRelID: 1, openID: 1, ringBufferGPADL: 1, targetVP: 0, downstreamRingBufferPageOffset: 2)),
        .closeChannel(CloseChannel(childRelID: 1)),
        .relIDReleased(RelIDReleased(childRelID: 1)),
        .modifyChannel(ModifyChannel(childRelID: 1, targetVP: 1)),
        .tlConnectRequest(TLConnectRequest(guestEndpointID: .kvp, hostServiceID: .vss)),
    ]

    /// Before contact there is nobody to answer: nothing but a rejection, and no state change.
    @Test(arguments: guestToHostMessages)
    func messagesBeforeContactChangeNothing(message: ChannelMessage) {
        var guest = Guest()
        let before = guest.snapshot
        #expect(isRejection(guest.post(message)))
        #expect(guest.snapshot == before)
    }

    /// After contact, only INITIATE_CONTACT may use connection 4; other ids are not VMBus message connections.
    @Test(arguments: guestToHostMessages)
    func messagesOnTheWrongConnectionChangeNothing(message: ChannelMessage) {
        var guest = Guest()
        guest.connect()
        let before = guest.snapshot
        for connectionID: UInt32 in [4, 0, 2, 3, 0x2001, 0x0100_0001] {
            #expect(isRejection(guest.post(message, on: connectionID)))
        }
        #expect(guest.snapshot == before)
    }

    @Test func acceptedConnectionIDs() {
        let server = ChannelServer(offers: devices, isGuestPage: { _ in true })
        #expect(server.accepts(connectionID: 1) && server.accepts(connectionID: 4))
        #expect(!server.accepts(connectionID: 0) && !server.accepts(connectionID: 2) && !server.accepts(connectionID: 0x2001))
        #expect(server.connectionID(ofChannel: 1) == 0x2001 && server.connectionID(ofChannel: 2) == 0x2002)
        #expect(server.connectionID(ofChannel: 0) == nil && server.connectionID(ofChannel: 3) == nil)
    }

    @Test func aFloodOfRequestOffersGetsOneSetOfOffers() {
        var guest = Guest()
        guest.connect()
        let connected = guest.snapshot
        #expect(guest.post(.requestOffers).count == 3)
        let before = guest.snapshot
        #expect(before != connected)        // the snapshot does see the server's state
        for _ in 0..<1000 { #expect(isRejection(guest.post(.requestOffers))) }
        #expect(guest.snapshot == before)
    }

    @Test func gpadlPagesOutsideGuestMemoryFail() {
        var guest = Guest()
        guest.boot()
        // In the header (all of it fits): page 0x10 is below guest RAM.
        #expect(isRejection(guest.createGPADL(1, relID: 1, ranges: [ring([0x5000, 0x10, 0x5002])]),
                            after: [gpadlCreated(1, 1, ok: false)]))
        // In the last body: one page past the end of guest RAM.
        #expect(isRejection(guest.createGPADL(2, relID: 1, ranges: [ring(pages(59) + [0x10_0000])]),
                            after: [gpadlCreated(1, 2, ok: false)]))
        #expect(isRejection(guest.createGPADL(3, relID: 1, ranges: [ring([.max, 0x5000])]),
                            after: [gpadlCreated(1, 3, ok: false)]))
        // None of them exists: an open with one fails.
        #expect(isRejection(guest.post(.openChannel(OpenChannel(childRelID: 1, openID: 1, ringBufferGPADL: 2,
                                                               targetVP: 0, downstreamRingBufferPageOffset: 20))),
                            after: [openFailed(1)]))
        #expect(guest.server.gpadl(1, ofChannel: 1) == nil && guest.server.gpadl(2, ofChannel: 1) == nil)
    }

    @Test func gpadlPageLimitsHold() {
        var guest = Guest(limits: .init(maxPagesPerGPADL: 30, maxTotalGPADLPages: 50))
        guest.boot()
        // Over the per-GPADL limit: in one message, and announced in a header that needs bodies.
        #expect(isRejection(guest.createGPADL(1, relID: 1, ranges: [ring(pages(31))]).prefix(2).map { $0 },
                            after: [gpadlCreated(1, 1, ok: false)]))
        #expect(guest.server.gpadl(1, ofChannel: 1) == nil)
        #expect(guest.createGPADL(2, relID: 1, ranges: [ring(pages(30))]) == [gpadlCreated(1, 2)])
        // Over the total: 30 + 21 > 50.
        #expect(isRejection(guest.createGPADL(3, relID: 2, ranges: [ring(pages(21))]),
                            after: [gpadlCreated(2, 3, ok: false)]))
        #expect(guest.createGPADL(4, relID: 2, ranges: [ring(pages(20))]) == [gpadlCreated(2, 4)])
        // Freeing makes room again.
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 2))) == [torndown(2)])
        #expect(guest.createGPADL(3, relID: 2, ranges: [ring(pages(21))]) == [gpadlCreated(2, 3)])
    }

    @Test func gpadlCountLimitsHold() {
        var guest = Guest(limits: .init(maxGPADLs: 3, maxPendingGPADLs: 1))
        guest.boot()
        // One GPADL may wait for bodies, not two.
        let (header1, bodies1) = try! GPADLHeader.messages(childRelID: 1, gpadl: 1, ranges: [ring(pages(40))])
        let (header2, _) = try! GPADLHeader.messages(childRelID: 1, gpadl: 2, ranges: [ring(pages(40))])
        #expect(guest.post(.gpadlHeader(header1)) == [])
        #expect(isRejection(guest.post(.gpadlHeader(header2)), after: [gpadlCreated(1, 2, ok: false)]))
        #expect(guest.post(.gpadlBody(bodies1[0])) == [gpadlCreated(1, 1)])
        #expect(guest.createGPADL(2, relID: 1, ranges: [ring(pages(2))]) == [gpadlCreated(1, 2)])
        #expect(guest.createGPADL(3, relID: 2, ranges: [ring(pages(2))]) == [gpadlCreated(2, 3)])
        #expect(isRejection(guest.createGPADL(4, relID: 2, ranges: [ring(pages(2))]), after: [gpadlCreated(2, 4, ok: false)]))
    }

    @Test func gpadlBodiesWithoutAHeaderChangeNothing() {
        var guest = Guest()
        guest.boot()
        #expect(guest.createGPADL(1, relID: 1, ranges: [ring(pages(4))]) == [gpadlCreated(1, 1)])
        let before = guest.snapshot
        // Unknown handle, a complete GPADL, an empty body.
        #expect(isRejection(guest.post(.gpadlBody(GPADLBody(messageNumber: 1, gpadl: 2, rangeWords: [0x5000])))))
        #expect(isRejection(guest.post(.gpadlBody(GPADLBody(messageNumber: 1, gpadl: 1, rangeWords: [0x5000])))))
        #expect(guest.snapshot == before)
        let (header, _) = try! GPADLHeader.messages(childRelID: 1, gpadl: 3, ranges: [ring(pages(40))])
        #expect(guest.post(.gpadlHeader(header)) == [])
        let waiting = guest.snapshot
        #expect(isRejection(guest.post(.gpadlBody(GPADLBody(messageNumber: 1, gpadl: 3, rangeWords: [])))))
        #expect(guest.snapshot == waiting)
    }

    @Test func gpadlBodiesBeyondTheAnnouncedLengthFail() {
        var guest = Guest()
        guest.boot()
        let (header, bodies) = try! GPADLHeader.messages(childRelID: 2, gpadl: 9, ranges: [ring(pages(40))])
        #expect(guest.post(.gpadlHeader(header)) == [])
        var body = bodies[0]
        body.rangeWords += [0x5000]
        #expect(isRejection(guest.post(.gpadlBody(body)), after: [gpadlCreated(2, 9, ok: false)]))
        // It is gone: the body Linux would send next is unknown.
        #expect(isRejection(guest.post(.gpadlBody(bodies[0]))))
        // A GPADL whose words do not parse into its ranges (byte_count claims 50 pages for 40 PFNs) fails too.
        let (lying, lyingBodies) = try! GPADLHeader.messages(childRelID: 2, gpadl: 10, ranges: [ring(pages(40))])
        var lyingHeader = lying
        lyingHeader.rangeWords[0] = UInt64(50 * 4096)
        #expect(guest.post(.gpadlHeader(lyingHeader)) == [])
        #expect(isRejection(guest.post(.gpadlBody(lyingBodies[0])), after: [gpadlCreated(2, 10, ok: false)]))
    }

    @Test func gpadlHandlesAndChannelsAreChecked() {
        var guest = Guest()
        guest.connect()
        // Before REQUESTOFFERS no channel is known to the guest.
        #expect(isRejection(guest.createGPADL(1, relID: 1, ranges: [ring(pages(2))]), after: [gpadlCreated(1, 1, ok: false)]))
        #expect(guest.post(.requestOffers).count == 3)
        for relID: UInt32 in [0, 3, .max] {
            #expect(isRejection(guest.createGPADL(1, relID: relID, ranges: [ring(pages(2))]),
                                after: [gpadlCreated(relID, 1, ok: false)]))
        }
        #expect(guest.createGPADL(0xE1E10, relID: 1, ranges: [ring(pages(2))]) == [gpadlCreated(1, 0xE1E10)])
        // The handle is in use (handles are shared by all channels); the first GPADL is untouched.
        #expect(isRejection(guest.createGPADL(0xE1E10, relID: 2, ranges: [ring(pages(2, base: 0x7000))]),
                            after: [gpadlCreated(2, 0xE1E10, ok: false)]))
        #expect(guest.server.gpadl(0xE1E10, ofChannel: 1) == [ring(pages(2))])
    }

    @Test func openChecksTheRingGPADL() {
        var guest = Guest()
        guest.boot()
        #expect(guest.createGPADL(1, relID: 1, ranges: [ring(pages(40))]) == [gpadlCreated(1, 1)])
        #expect(guest.createGPADL(2, relID: 2, ranges: [ring(pages(40))]) == [gpadlCreated(2, 2)])
        // Two ranges, and a range that does not start on a page: fine as buffers, not as rings.
        #expect(guest.createGPADL(3, relID: 1, ranges: [ring(pages(2)), ring(pages(2, base: 0x8000))]) == [gpadlCreated(1, 3)])
        #expect(guest.createGPADL(4, relID: 1, ranges: [GPARange(byteCount: 4096, byteOffset: 16, pageNumbers: pages(2))])
                == [gpadlCreated(1, 4)])
        let before = guest.snapshot
        func open(_ handle: UInt32, offset: UInt32) -> [ChannelServerAction] {
            guest.post(.openChannel(OpenChannel(childRelID: 1, openID: 1, ringBufferGPADL: handle, targetVP: 0,
                                                downstreamRingBufferPageOffset: offset)))
        }
        #expect(isRejection(open(99, offset: 20), after: [openFailed(1)]))         // no such GPADL
        #expect(isRejection(open(2, offset: 20), after: [openFailed(1)]))          // channel 2's
        #expect(isRejection(open(3, offset: 2), after: [openFailed(1)]))           // two ranges
        #expect(isRejection(open(4, offset: 1), after: [openFailed(1)]))           // not whole pages
        for offset: UInt32 in [0, 1, 39, 40, 41, .max] {                           // a ring under 2 pages
            #expect(isRejection(open(1, offset: offset), after: [openFailed(1)]))
        }
        #expect(guest.snapshot == before)
        guard case .open(let request) = open(1, offset: 38).first else {
            Issue.record("smallest downstream ring refused")
            return
        }
        #expect(request.inboundRingPages.count == 2 && request.outboundRingPages.count == 38)
    }

    @Test func openOutOfStateFails() {
        var guest = Guest()
        guest.connect()
        let open = ChannelMessage.openChannel(OpenChannel(childRelID: 1, openID: 1, ringBufferGPADL: 1, targetVP: 0,
                                                          downstreamRingBufferPageOffset: 20))
        #expect(isRejection(guest.post(open), after: [openFailed(1)]))              // not offered yet
        #expect(guest.post(.requestOffers).count == 3)
        guard case .open = guest.requestOpen(1, handle: 1).first else {
            Issue.record("no open")
            return
        }
        let opening = guest.snapshot
        #expect(isRejection(guest.post(open), after: [openFailed(1)]))              // twice while opening
        #expect(isRejection(guest.post(.closeChannel(CloseChannel(childRelID: 1))))) // no close while opening
        #expect(guest.snapshot == opening)
        #expect(guest.server.openCompleted(childRelID: 1, status: 0).count == 1)
        #expect(isRejection(guest.post(open), after: [openFailed(1)]))              // twice when open
        #expect(isRejection(guest.server.openCompleted(childRelID: 1, status: 0)))  // nothing to complete
        #expect(isRejection(guest.server.openCompleted(childRelID: 2, status: 0)))
        #expect(isRejection(guest.server.openCompleted(childRelID: 77, status: 0)))
    }

    @Test func aFailedOpenLeavesTheChannelClosed() {
        var guest = Guest()
        guest.boot()
        _ = guest.requestOpen(2, handle: 0xE1E10)
        #expect(guest.server.openCompleted(childRelID: 2, status: 0xC000_0001)
                == [.send(.openChannelResult(OpenChannelResult(childRelID: 2, openID: 2, status: 0xC000_0001)))])
        #expect(isRejection(guest.post(.closeChannel(CloseChannel(childRelID: 2)))))
        // Linux tears the ring GPADL down after a failed open (__vmbus_open error_free_gpadl) and may try again.
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 0xE1E10))) == [torndown(0xE1E10)])
        guest.open(2, handle: 0xE1E11)
    }

    @Test func closeOfAChannelThatIsNotOpenChangesNothing() {
        var guest = Guest()
        guest.boot()
        let before = guest.snapshot
        for relID: UInt32 in [1, 2, 0, 3] {
            #expect(isRejection(guest.post(.closeChannel(CloseChannel(childRelID: relID)))))
        }
        #expect(guest.snapshot == before)
    }

    /// The rings must stay mapped while the device runs: their GPADL's teardown is answered after the close.
    @Test func teardownOfARingInUseWaitsForTheClose() {
        var guest = Guest()
        guest.boot()
        guest.open(2, handle: 0xE1E10)
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 0xE1E10))) == [])
        #expect(isRejection(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 0xE1E10)))))
        #expect(guest.post(.closeChannel(CloseChannel(childRelID: 2))) == [.close(childRelID: 2), torndown(0xE1E10)])

        // While opening: answered with the failed open's result.
        _ = guest.requestOpen(1, handle: 5)
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 5))) == [])
        #expect(guest.server.openCompleted(childRelID: 1, status: 1)
                == [.send(.openChannelResult(OpenChannelResult(childRelID: 1, openID: 1, status: 1))), torndown(5)])

        // At a rescind: after the close, before the rescind.
        guest.open(1, handle: 6)
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 6))) == [])
        #expect(guest.server.rescind(childRelID: 1) == [.close(childRelID: 1), torndown(6), rescinded(1)])
    }

    /// netvsc on hosts before WIN10 tears its buffer GPADLs down before closing the channel and waits for the
    /// answer: those are freed at once.
    @Test func teardownOfABufferGPADLOfAnOpenChannelIsImmediate() {
        var guest = Guest()
        guest.boot(.win8_1)
        guest.open(2, handle: 0xE1E10)
        #expect(guest.createGPADL(0xE1E11, relID: 2, ranges: [ring(pages(100, base: 0x20000))]) == [gpadlCreated(2, 0xE1E11)])
        #expect(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 0xE1E11))) == [torndown(0xE1E11)])
        #expect(guest.post(.closeChannel(CloseChannel(childRelID: 2))) == [.close(childRelID: 2)])
    }

    @Test func teardownsThatDoNotFitChangeNothing() {
        var guest = Guest()
        guest.boot()
        #expect(guest.createGPADL(1, relID: 1, ranges: [ring(pages(4))]) == [gpadlCreated(1, 1)])
        let (header, _) = try! GPADLHeader.messages(childRelID: 1, gpadl: 2, ranges: [ring(pages(40))])
        #expect(guest.post(.gpadlHeader(header)) == [])
        let before = guest.snapshot
        #expect(isRejection(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 3)))))  // unknown
        #expect(isRejection(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 1)))))  // another channel's
        #expect(isRejection(guest.post(.gpadlTeardown(GPADLTeardown(childRelID: 1, gpadl: 2)))))  // being created
        #expect(guest.snapshot == before)
    }

    @Test func hvSockConnectsAreRefused() {
        var guest = Guest()
        guest.boot()
        let endpoint = GUID("01020304-0506-0708-090a-0b0c0d0e0f10")!
        #expect(guest.post(.tlConnectRequest(TLConnectRequest(guestEndpointID: endpoint, hostServiceID: .kvp)))
                == [.send(.tlConnectResult(TLConnectResult(endpointID: endpoint, serviceID: .kvp,
                                                           status: ChannelServer.statusConnectionRefused)))])
        var old = Guest()
        old.boot(.win10)
        #expect(old.post(.tlConnectRequest(TLConnectRequest(guestEndpointID: endpoint, hostServiceID: .kvp))) == [])
    }

    /// Linux's sequence over and over with random damage: bytes changed, messages cut short, posted on the other
    /// connection, replaced by garbage. Nothing traps, every answer fits a SynIC message, and every open the
    /// server asks for names guest pages only and two rings of at least two pages.
    @Test func damagedLinuxSequencesNeverTrapNorOpenBadRings() throws {
        var random = SplitMix64(seed: 0x5EED_1234)
        var guest = Guest()
        let big = try GPADLHeader.messages(childRelID: 2, gpadl: 5, ranges: [ring(pages(40))])
        let small = try GPADLHeader.messages(childRelID: 2, gpadl: 6, ranges: [ring(pages(4))])
        let script: [ChannelMessage] = [
            contact(.win10V5_3), .requestOffers,
            .gpadlHeader(big.header), .gpadlBody(big.bodies[0]),
            .openChannel(OpenChannel(childRelID: 2, openID: 2, ringBufferGPADL: 5, targetVP: 0,
                                     downstreamRingBufferPageOffset: 20)),
            .modifyChannel(ModifyChannel(childRelID: 2, targetVP: 1)),
            .closeChannel(CloseChannel(childRelID: 2)), .gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 5)),
            .gpadlHeader(small.header),
            .openChannel(OpenChannel(childRelID: 2, openID: 2, ringBufferGPADL: 6, targetVP: 0,
                                     downstreamRingBufferPageOffset: 2)),
            .gpadlTeardown(GPADLTeardown(childRelID: 2, gpadl: 6)), .closeChannel(CloseChannel(childRelID: 2)),
            .tlConnectRequest(TLConnectRequest(guestEndpointID: .kvp, hostServiceID: .vss)),
            .relIDReleased(RelIDReleased(childRelID: 1)), .unload,
        ]
        var opens = 0
        var rejections = 0
        for round in 0..<30_000 {
            var bytes = script[round % script.count].bytes
            var connectionID: UInt32 = round % script.count == 0 ? 4 : 1
            switch random.next() % 8 {
            case 0:     // garbage with a plausible type
                bytes = (0..<Int(random.next() % 250)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if bytes.count >= 4 { bytes[0] = UInt8(random.next() % 26); bytes[1] = 0; bytes[2] = 0; bytes[3] = 0 }
            case 1, 2:  // a few bytes changed, small values and all-ones
                for _ in 0...(random.next() % 3) {
                    let index = Int(random.next() % UInt64(bytes.count))
                    bytes[index] = random.next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: random.next() % 8)
                }
            case 3:     // cut short
                bytes.removeLast(Int(random.next() % UInt64(bytes.count + 1)))
            case 4:     // the other connection
                connectionID = 5 - connectionID
            default:
                break
            }
            var actions = guest.server.receive(bytes, connectionID: connectionID)
            while !actions.isEmpty {
                switch actions.removeFirst() {
                case .send(let message):
                    #expect(message.bytes.count <= VMBusConstants.maxMessageSize)
                case .open(let request):
                    opens += 1
                    #expect(request.ringPages.allSatisfy { guestPages.contains($0) })
                    #expect(request.downstreamPageOffset >= 2
                            && Int(request.downstreamPageOffset) <= request.ringPages.count - 2)
                    actions += guest.server.openCompleted(childRelID: request.childRelID,
                                                          status: random.next() % 4 == 0 ? 1 : 0)
                case .rejected:
                    rejections += 1
                case .close, .retarget, .disconnected:
                    break
                }
            }
            // Now and then the host removes the NIC; a new VM later.
            if random.next() % 500 == 0 { _ = guest.server.rescind(childRelID: 2) }
            if round % 1500 == 1499 { guest = Guest() }
        }
        // The damage did not keep the sequence from working, nor go unnoticed.
        #expect(opens > 40)
        #expect(rejections > 10_000)
    }
}

/// A small deterministic generator, so a failure can be replayed.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
