// The VMBus channel server (vmbus-protocol.md §3): the host side of the channel-management protocol as a pure
// state machine. It takes the payloads the guest posts with HvPostMessage and the shell's answers (open
// completed, device removed) and returns what to do: messages to deliver, devices to open, close or retarget.
// No threads, no I/O, no clocks; every input is hostile until checked and none can make it trap.
//
// Behaviour follows what Linux 6.1's hv_vmbus (drivers/hv/connection.c, channel_mgmt.c, channel.c) sends and
// expects, and where Linux leaves a choice, what OpenVMM's vmbus_server (vm/devices/vmbus/vmbus_server/src/
// channels.rs) does as a stand-in for Hyper-V:
//
// * Contact. Versions 2.4 (WIN8) … 5.3 are accepted; anything else gets VERSION_RESPONSE version_supported = 0
//   and Linux tries its next version (connection.c vmbus_connect loops over vmbus_versions[] until
//   conn_state == CONNECTED). From 5.0 on INITIATE_CONTACT must arrive on connection 4, below 5.0 on 1
//   (vmbus_negotiate_version sets msg_conn_id accordingly); the wrong one is refused. From 5.0 the answer carries
//   msg_conn_id = 1, which Linux uses for every later message; below 5.0 it carries the version (as OpenVMM).
//   target_vcpu counts from 3.0 (WIN8_1) on, msg_sint from 5.0 on (OpenVMM handle_initiate_contact).
// * A new INITIATE_CONTACT while connected is a reconnect, not an error: the old connection is unloaded first
//   (every open channel closed, every GPADL dropped, `.disconnected`) and then the request is answered. Linux
//   sends UNLOAD before kexec, on crash and on hibernation, but vmbus_initiate_unload skips it below 3.0
//   ("Pre-Win2012R2 hosts don't support reconnect"), so a kexec'd kernel on a 2.4 connection simply contacts
//   again, as does one whose crash-time UNLOAD went unanswered; OpenVMM's initiate_contact likewise disconnects
//   before it answers. UNLOAD before any contact is answered with UNLOAD_RESPONSE alone.
// * Offers. REQUESTOFFERS is answered once per connection (Linux's vmbus_onoffer treats a second offer of the
//   same instance as a resume and WARNs); a second one is rejected, as OpenVMM's OffersAlreadySent.
// * GPADLs are keyed by their guest-chosen handle, which Linux shares across channels (next_gpadl_handle).
//   Linux creates them with its channel's relid (__vmbus_establish_gpadl: gpadlmsg->child_relid =
//   channel->offermsg.child_relid), so relid 0 or a relid the guest was not offered fails. Failures answer
//   GPADL_CREATED with status 0x8000FFFF (OpenVMM STATUS_UNSUCCESSFUL; Linux fails on any nonzero
//   creation_status with -EDQUOT).
// * Open. The server checks the ring GPADL before asking the shell: created, of this channel, one whole-page
//   range (Linux: byte_offset 0, byte_count = ring size), both rings ≥ 2 pages. Linux tears the ring GPADL down
//   itself after a failed open (__vmbus_open error_free_gpadl).
// * Close and teardown. Linux sends CLOSECHANNEL, then GPADL_TEARDOWN for the ring and waits for GPADL_TORNDOWN
//   (vmbus_close_internal). A teardown of the ring GPADL of a channel that is still open (or opening) is not
//   refused but deferred, as Hyper-V and OpenVMM do (the GPADL stays TearingDown while the device has it mapped):
//   GPADL_TORNDOWN follows the `.close`. Other GPADLs are freed at once even while their channel is open: Linux's
//   netvsc tears its receive/send buffer GPADLs down before closing the channel on hosts older than WIN10 and
//   waits for the answer, so deferring those would deadlock it.
// * Rescind. The host removes a device: an open channel is closed at once (`.close`), then RESCINDCHANNELOFFER.
//   Linux then closes the channel if it had it open (vmbus_close_internal does not look at rescind) but sends no
//   GPADL_TEARDOWN (vmbus_teardown_gpadl skips the post when channel->rescind), and finally RELID_RELEASED
//   (hv_process_channel_removal), which drops the channel's remaining GPADLs. A removed device is not offered
//   again. RELID_RELEASED for a closed channel that was not rescinded is allowed too: Linux sends it when it
//   fails to register a device (vmbus_add_channel_work err_deq_chan); that channel is offered again after a
//   reconnect.
// * MODIFYCHANNEL (4.1+, channel open) → `.retarget`; from 5.3 on also MODIFYCHANNEL_RESPONSE status 0, which
//   Linux waits for (channel.c send_modifychannel_with_ack); below 5.3 no answer (send_modifychannel_without_ack:
//   "For VMbus version 5.2 and earlier, it never sends an ACK"). Linux only retargets open channels ("Hyper-V will
//   ignore MODIFYCHANNEL messages for non-open channels"); for others the server answers status 0x8000FFFF from
//   5.3 on so a waiting guest is not stuck (OpenVMM handle_modify_channel).
// * UNLOAD closes everything and answers UNLOAD_RESPONSE after `.disconnected`; the guest may contact again.
// * TL_CONNECT_REQUEST (hv_sock): no host services, so the request is refused the way OpenVMM refuses an
//   unknown service: TL_CONNECT_RESULT with STATUS_CONNECTION_REFUSED from 4.1 on (nothing below). Linux ignores
//   the answer (channel_message_table has no handler) and times out its connect.
// * Channel opens that are in flight (`.open` sent, `openCompleted` not yet called) are never cut short: an
//   UNLOAD, a reconnect or a rescind that meets one waits for `openCompleted`, and then closes the channel if it
//   opened. `.close` therefore only ever follows a successful open, and `.disconnected` only comes when no
//   channel is open or opening.

/// The host side of VMBus channel management (see the notes at the top of this file).
public struct ChannelServer: Sendable {
    /// Bounds on what a guest can make the server hold.
    public struct Limits: Sendable, Equatable {
        /// GPADLs at once, being created or created, all channels together.
        public var maxGPADLs: Int
        /// Pages in one GPADL. The wire format cannot carry more than `GPADLHeader.maxPages` (8190, 32 MiB).
        public var maxPagesPerGPADL: Int
        /// Pages in all GPADLs together, counting those still being created by their announced size.
        public var maxTotalGPADLPages: Int
        /// GPADLs whose GPADL_BODY messages have not all arrived yet.
        public var maxPendingGPADLs: Int

        /// Defaults: room for a few NICs with 16 MiB receive buffers and dozens of channels' rings; the page
        /// lists hv keeps for them stay below 2 MiB.
        public init(
            maxGPADLs: Int = 1024, maxPagesPerGPADL: Int = GPADLHeader.maxPages,
            maxTotalGPADLPages: Int = 262_144, maxPendingGPADLs: Int = 64
        ) {
            self.maxGPADLs = maxGPADLs
            self.maxPagesPerGPADL = maxPagesPerGPADL
            self.maxTotalGPADLPages = maxTotalGPADLPages
            self.maxPendingGPADLs = maxPendingGPADLs
        }
    }

    /// The failure status of GPADL_CREATED, OPENCHANNEL_RESULT and MODIFYCHANNEL_RESPONSE (OpenVMM
    /// STATUS_UNSUCCESSFUL). Linux only tests for nonzero.
    public static let statusUnsuccessful: UInt32 = 0x8000_FFFF
    /// TL_CONNECT_RESULT status for a refused hv_sock connect (NTSTATUS STATUS_CONNECTION_REFUSED).
    public static let statusConnectionRefused = Int32(bitPattern: 0xC000_0236)
    /// The versions hv accepts: WIN8 (2.4) through 5.3, the ones Linux 6.1 asks for.
    public static let supportedVersions: [VMBusVersion] = VMBusVersion.linux61Requests
    /// Channel ids are 1…2047: Linux keeps channels in an array of MAX_CHANNEL_RELIDS (2048) and ignores larger.
    public static let maxChannels = 2047
    /// A channel's connection id is relid | this (OpenVMM: relid | SINT 2 << 12 | VTL 0 << 16).
    public static let channelConnectionIDBase: UInt32 = 0x2000

    public let limits: Limits
    private let isGuestPage: @Sendable (UInt64) -> Bool
    private var channels: [Channel]
    private var gpadls: [UInt32: GPADL] = [:]
    private var connection: Connection = .disconnected

    /// The negotiated protocol version; nil until connected and again after an unload.
    public private(set) var version: VMBusVersion?
    /// The VP to deliver messages to: INITIATE_CONTACT's target_vcpu (from 3.0 on; VP 0 below). Kept after an
    /// unload so that UNLOAD_RESPONSE reaches the VP the guest polls. Not checked against the VP count here.
    public private(set) var messageTargetVP: UInt32 = 0
    /// The SINT to deliver messages on: 2, or INITIATE_CONTACT's msg_sint from 5.0 on.
    public private(set) var messageSINT: UInt8 = VMBusConstants.messageSINT

    /// `offers[i]` becomes channel i + 1. `isGuestPage` says whether a guest page number is backed by guest RAM
    /// that the shell can map; every GPADL page must pass it.
    public init(offers: [ChannelOfferSpec], limits: Limits = .init(), isGuestPage: @escaping @Sendable (UInt64) -> Bool) {
        precondition(offers.count <= Self.maxChannels, "VMBus offers at most \(Self.maxChannels) channels")
        channels = offers.map { Channel(spec: $0) }
        self.limits = limits
        self.isGuestPage = isGuestPage
    }

    /// The connection id the guest signals channel `relID` with (HvSignalEvent), or nil for no such device.
    public func connectionID(ofChannel relID: UInt32) -> UInt32? {
        guard let index = channelIndex(relID), !channels[index].removed else { return nil }
        return relID | Self.channelConnectionIDBase
    }

    /// Whether HvPostMessage on `connectionID` reaches this server: 1 always, 4 for INITIATE_CONTACT from 5.0 on
    /// (Linux treats HV_STATUS_INVALID_CONNECTION_ID there as "version not supported"; hv answers instead).
    public func accepts(connectionID: UInt32) -> Bool {
        connectionID == VMBusConstants.messageConnectionID || connectionID == VMBusConstants.contactConnectionIDv5
    }

    /// The ranges of a created GPADL of channel `relID` (a NetVSC receive buffer, say), or nil. A copy: it stays
    /// valid for the caller, but the guest may reuse the pages once it has torn the GPADL down.
    public func gpadl(_ handle: UInt32, ofChannel relID: UInt32) -> [GPARange]? {
        guard let gpadl = gpadls[handle], gpadl.childRelID == relID, case .created(let ranges) = gpadl.state else {
            return nil
        }
        return ranges
    }

    /// One HvPostMessage payload (message_type 1) the guest posted on `connectionID`.
    public mutating func receive(_ payload: [UInt8], connectionID: UInt32) -> [ChannelServerAction] {
        guard accepts(connectionID: connectionID) else {
            return [.rejected("message on connection \(connectionID), which is not a VMBus message connection")]
        }
        let message: ChannelMessage
        do {
            message = try ChannelMessage.decode(payload)
        } catch {
            return [.rejected("malformed message on connection \(connectionID): \(error)")]
        }
        if case .initiateContact(let contact) = message {
            return initiateContact(contact, connectionID: connectionID)
        }
        guard connectionID == VMBusConstants.messageConnectionID else {
            return [.rejected("\(name(message.type)) on connection \(connectionID): only INITIATE_CONTACT goes there")]
        }
        switch message {
        case .unload: return unload()
        case .requestOffers: return requestOffers()
        case .gpadlHeader(let header): return gpadlHeader(header)
        case .gpadlBody(let body): return gpadlBody(body)
        case .gpadlTeardown(let teardown): return gpadlTeardown(teardown)
        case .openChannel(let open): return openChannel(open)
        case .closeChannel(let close): return closeChannel(close)
        case .relIDReleased(let released): return relIDReleased(released)
        case .modifyChannel(let modify): return modifyChannel(modify)
        case .tlConnectRequest(let request): return tlConnectRequest(request)
        case .initiateContact: return [] // handled above
        case .offerChannel, .rescindChannelOffer, .allOffersDelivered, .openChannelResult, .gpadlCreated,
             .gpadlTorndown, .versionResponse, .unloadResponse, .tlConnectResult, .modifyChannelResponse:
            return [.rejected("\(name(message.type)) is a host-to-guest message")]
        }
    }

    /// The shell finished (or failed) opening a channel it was asked to open. Status 0 is success; anything else
    /// leaves the channel closed (and the shell must not have started the device).
    public mutating func openCompleted(childRelID: UInt32, status: UInt32) -> [ChannelServerAction] {
        guard let index = channelIndex(childRelID), case .opening(let open) = channels[index].state else {
            return [.rejected("open completion for channel \(childRelID), which is not being opened")]
        }
        switch connection {
        case .disconnecting(let next):
            // The guest unloaded or reconnected while the device was starting: close it again, then finish.
            channels[index].state = .unoffered
            var actions: [ChannelServerAction] = status == 0 ? [.close(childRelID: childRelID)] : []
            if !channels.contains(where: \.isOpening) { actions += finishDisconnect(then: next) }
            return actions
        case .connected where channels[index].rescinded:
            // Removed while starting. Linux stopped waiting for the result when the rescind came.
            channels[index].state = .closed
            let actions: [ChannelServerAction] = status == 0 ? [.close(childRelID: childRelID)] : []
            return actions + completeDeferredTeardowns(of: childRelID)
        case .connected:
            let result = ChannelMessage.openChannelResult(
                OpenChannelResult(childRelID: childRelID, openID: open.request.openID, status: status))
            if status == 0 {
                channels[index].state = .open(open)
                return [.send(result)]
            }
            channels[index].state = .closed
            return [.send(result)] + completeDeferredTeardowns(of: childRelID)
        case .disconnected:
            // Unreachable: a channel is only opening while connected or disconnecting.
            return [.rejected("open completion for channel \(childRelID) while disconnected")]
        }
    }

    /// The host removes a device: RESCINDCHANNELOFFER (the guest answers RELID_RELEASED). An open channel is
    /// closed first. The device is not offered again, also not after a reconnect.
    public mutating func rescind(childRelID: UInt32) -> [ChannelServerAction] {
        guard let index = channelIndex(childRelID), !channels[index].removed else {
            return [.rejected("rescind of channel \(childRelID), which is not offered")]
        }
        channels[index].removed = true
        let rescind = ChannelServerAction.send(.rescindChannelOffer(RescindChannelOffer(childRelID: childRelID)))
        switch channels[index].state {
        case .unoffered:
            return []
        case .closed:
            channels[index].rescinded = true
            return [rescind]
        case .open:
            channels[index].state = .closed
            channels[index].rescinded = true
            return [.close(childRelID: childRelID)] + completeDeferredTeardowns(of: childRelID) + [rescind]
        case .opening:
            // Closed when the open completes. While disconnecting the guest has forgotten its channels anyway.
            guard case .connected = connection else { return [] }
            channels[index].rescinded = true
            return [rescind]
        }
    }

    // MARK: - Connection

    private mutating func initiateContact(_ contact: InitiateContact, connectionID: UInt32) -> [ChannelServerAction] {
        switch connection {
        case .disconnected:
            return negotiate(contact, connectionID: connectionID)
        case .connected:
            return disconnect(then: .contact(contact, connectionID: connectionID))
        case .disconnecting:
            connection = .disconnecting(then: .contact(contact, connectionID: connectionID))
            return []
        }
    }

    private mutating func negotiate(_ contact: InitiateContact, connectionID: UInt32) -> [ChannelServerAction] {
        let requested = contact.versionRequested
        // The answer goes where the guest listens for it, also when it is a refusal.
        messageTargetVP = requested >= .win8_1 ? contact.targetVP : 0
        messageSINT = VMBusConstants.messageSINT
        var problem: String?
        if requested >= .win10V5 {
            if contact.messageSINT > 15 {
                problem = "msg_sint \(contact.messageSINT) is not a SINT"
            } else if contact.messageVTL != 0 {
                problem = "msg_vtl \(contact.messageVTL): hv serves VTL 0 only"
            } else {
                messageSINT = contact.messageSINT
            }
        }
        let refusal = ChannelServerAction.send(.versionResponse(VersionResponse(versionSupported: false, messageConnectionID: 0)))
        guard Self.supportedVersions.contains(requested) else { return [refusal] }
        let expectedConnection = requested.contactsOnConnection4
            ? VMBusConstants.contactConnectionIDv5 : VMBusConstants.messageConnectionID
        if problem == nil && connectionID != expectedConnection {
            problem = "must arrive on connection \(expectedConnection), came on \(connectionID)"
        }
        if let problem { return [refusal, .rejected("INITIATE_CONTACT for version \(requested): \(problem)")] }
        version = requested
        connection = .connected(version: requested, offersSent: false)
        let messageConnectionID = requested >= .win10V5 ? VMBusConstants.messageConnectionID : requested.rawValue
        return [.send(.versionResponse(VersionResponse(versionSupported: true, connectionState: 0,
                                                       messageConnectionID: messageConnectionID)))]
    }

    private mutating func unload() -> [ChannelServerAction] {
        switch connection {
        case .disconnected:
            // Nothing to close; answer so that a guest polling for the response goes on.
            return [.send(.unloadResponse)]
        case .connected:
            return disconnect(then: .unloadResponse)
        case .disconnecting:
            connection = .disconnecting(then: .unloadResponse)
            return []
        }
    }

    /// Closes every open channel; finishes at once unless a channel is still being opened.
    private mutating func disconnect(then next: PendingAction) -> [ChannelServerAction] {
        var actions: [ChannelServerAction] = []
        for index in channels.indices {
            switch channels[index].state {
            case .open:
                actions.append(.close(childRelID: relID(index)))
                channels[index].state = .unoffered
            case .closed:
                channels[index].state = .unoffered
            case .opening, .unoffered:
                break
            }
            channels[index].rescinded = false
        }
        version = nil
        if channels.contains(where: \.isOpening) {
            connection = .disconnecting(then: next)
            return actions
        }
        return actions + finishDisconnect(then: next)
    }

    private mutating func finishDisconnect(then next: PendingAction) -> [ChannelServerAction] {
        gpadls.removeAll()
        connection = .disconnected
        version = nil
        switch next {
        case .unloadResponse:
            return [.disconnected, .send(.unloadResponse)]
        case .contact(let contact, let connectionID):
            return [.disconnected] + negotiate(contact, connectionID: connectionID)
        }
    }

    private mutating func requestOffers() -> [ChannelServerAction] {
        guard case .connected(let version, let offersSent) = connection else {
            return [.rejected("REQUESTOFFERS \(notConnected)")]
        }
        guard !offersSent else { return [.rejected("REQUESTOFFERS again: the offers were sent")] }
        connection = .connected(version: version, offersSent: true)
        var actions: [ChannelServerAction] = []
        for index in channels.indices where !channels[index].removed {
            channels[index].state = .closed
            let spec = channels[index].spec
            let relID = relID(index)
            actions.append(.send(.offerChannel(OfferChannel(
                interfaceType: spec.interfaceType, interfaceInstance: spec.interfaceInstance, flags: spec.flags,
                userDefined: spec.userDefined, childRelID: relID, monitorID: 0xFF, monitorAllocated: false,
                isDedicatedInterrupt: true, connectionID: relID | Self.channelConnectionIDBase))))
        }
        actions.append(.send(.allOffersDelivered))
        return actions
    }

    // MARK: - GPADLs

    private mutating func gpadlHeader(_ header: GPADLHeader) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("GPADL_HEADER \(notConnected)")] }
        func fail(_ reason: String) -> [ChannelServerAction] {
            [.send(.gpadlCreated(GPADLCreated(childRelID: header.childRelID, gpadl: header.gpadl,
                                              status: Self.statusUnsuccessful))),
             .rejected("GPADL_HEADER \(hex(header.gpadl)) for channel \(header.childRelID): \(reason)")]
        }
        guard let index = offeredIndex(header.childRelID) else { return fail("no such channel was offered") }
        guard !channels[index].rescinded else { return fail("the channel was rescinded") }
        guard gpadls[header.gpadl] == nil else { return fail("the handle is in use") }
        guard gpadls.count < limits.maxGPADLs else { return fail("already \(gpadls.count) GPADLs, the limit") }
        // The words are the range headers plus one per page (GPARange.parse accepts nothing else), and decoding
        // made sure range_buflen holds at least two words per range.
        let pages = max(0, header.announcedWords - Int(header.rangeCount))
        guard pages <= limits.maxPagesPerGPADL else {
            return fail("\(pages) pages, more than \(limits.maxPagesPerGPADL)")
        }
        let total = totalGPADLPages
        guard total + pages <= limits.maxTotalGPADLPages else {
            return fail("\(pages) pages on top of \(total) exceed the limit of \(limits.maxTotalGPADLPages)")
        }
        guard header.isComplete else {
            guard pendingGPADLCount < limits.maxPendingGPADLs else {
                return fail("already \(limits.maxPendingGPADLs) GPADLs waiting for GPADL_BODY")
            }
            gpadls[header.gpadl] = GPADL(
                childRelID: header.childRelID, pageCount: pages,
                state: .receiving(words: header.rangeWords, announcedWords: header.announcedWords,
                                  rangeCount: Int(header.rangeCount)))
            return []
        }
        let ranges: [GPARange]
        do {
            ranges = try header.ranges(maxPages: limits.maxPagesPerGPADL)
        } catch {
            return fail("\(error)")
        }
        return create(header.gpadl, childRelID: header.childRelID, ranges: ranges, fail: fail)
    }

    private mutating func gpadlBody(_ body: GPADLBody) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("GPADL_BODY \(notConnected)")] }
        // A body does not name its channel: with no GPADL to find the relid in there is nobody to answer.
        guard let gpadl = gpadls[body.gpadl] else {
            return [.rejected("GPADL_BODY for \(hex(body.gpadl)), which no GPADL_HEADER started")]
        }
        guard case .receiving(var words, let announcedWords, let rangeCount) = gpadl.state else {
            return [.rejected("GPADL_BODY for \(hex(body.gpadl)), which is complete")]
        }
        guard !body.rangeWords.isEmpty else { return [.rejected("GPADL_BODY for \(hex(body.gpadl)) carries nothing")] }
        let childRelID = gpadl.childRelID
        func fail(_ reason: String) -> [ChannelServerAction] {
            [.send(.gpadlCreated(GPADLCreated(childRelID: childRelID, gpadl: body.gpadl, status: Self.statusUnsuccessful))),
             .rejected("GPADL_BODY for \(hex(body.gpadl)) of channel \(childRelID): \(reason)")]
        }
        // Out of the table while it changes (no copy of the words), back in unless it failed.
        gpadls[body.gpadl] = nil
        guard body.rangeWords.count <= announcedWords - words.count else {
            return fail("\(words.count + body.rangeWords.count) range words, \(announcedWords) announced")
        }
        words += body.rangeWords
        guard words.count == announcedWords else {
            gpadls[body.gpadl] = GPADL(
                childRelID: childRelID, pageCount: gpadl.pageCount,
                state: .receiving(words: words, announcedWords: announcedWords, rangeCount: rangeCount))
            return []
        }
        guard let index = offeredIndex(childRelID), !channels[index].rescinded else {
            return fail("the channel is gone")
        }
        let ranges: [GPARange]
        do {
            ranges = try GPARange.parse(words: words, rangeCount: rangeCount, maxPages: limits.maxPagesPerGPADL)
        } catch {
            return fail("\(error)")
        }
        return create(body.gpadl, childRelID: childRelID, ranges: ranges, fail: fail)
    }

    /// Checks a complete GPADL's pages and stores it.
    private mutating func create(
        _ handle: UInt32, childRelID: UInt32, ranges: [GPARange], fail: (String) -> [ChannelServerAction]
    ) -> [ChannelServerAction] {
        for range in ranges {
            if let page = range.pageNumbers.first(where: { !isGuestPage($0) }) {
                return fail("page \(hex(page)) is not guest memory")
            }
        }
        let pages = ranges.reduce(0) { $0 + $1.pageNumbers.count }
        gpadls[handle] = GPADL(childRelID: childRelID, pageCount: pages, state: .created(ranges))
        return [.send(.gpadlCreated(GPADLCreated(childRelID: childRelID, gpadl: handle, status: 0)))]
    }

    private mutating func gpadlTeardown(_ teardown: GPADLTeardown) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("GPADL_TEARDOWN \(notConnected)")] }
        let what = "GPADL_TEARDOWN of \(hex(teardown.gpadl)) for channel \(teardown.childRelID)"
        guard let gpadl = gpadls[teardown.gpadl] else { return [.rejected("\(what): no such GPADL")] }
        guard gpadl.childRelID == teardown.childRelID else {
            return [.rejected("\(what): it belongs to channel \(gpadl.childRelID)")]
        }
        switch gpadl.state {
        case .receiving:
            return [.rejected("\(what): it is still being created")]
        case .tearingDown:
            return [.rejected("\(what): it is already being torn down")]
        case .created(let ranges):
            if isRingInUse(teardown.gpadl, of: teardown.childRelID) {
                // The device has the rings mapped: GPADL_TORNDOWN waits for the close.
                gpadls[teardown.gpadl] = GPADL(childRelID: gpadl.childRelID, pageCount: gpadl.pageCount,
                                               state: .tearingDown(ranges))
                return []
            }
            gpadls[teardown.gpadl] = nil
            return [.send(.gpadlTorndown(GPADLTorndown(gpadl: teardown.gpadl)))]
        }
    }

    /// Frees the GPADLs of channel `relID` whose teardown waited for the channel to close, answering each.
    private mutating func completeDeferredTeardowns(of relID: UInt32) -> [ChannelServerAction] {
        let handles = gpadls.filter { $0.value.childRelID == relID && $0.value.isTearingDown }.keys.sorted()
        for handle in handles { gpadls[handle] = nil }
        return handles.map { .send(.gpadlTorndown(GPADLTorndown(gpadl: $0))) }
    }

    private func isRingInUse(_ handle: UInt32, of relID: UInt32) -> Bool {
        guard let index = channelIndex(relID) else { return false }
        switch channels[index].state {
        case .opening(let open), .open(let open): return open.ringGPADL == handle
        case .closed, .unoffered: return false
        }
    }

    private var totalGPADLPages: Int { gpadls.values.reduce(0) { $0 + $1.pageCount } }

    private var pendingGPADLCount: Int { gpadls.values.reduce(0) { $0 + ($1.isReceiving ? 1 : 0) } }

    // MARK: - Channels

    private mutating func openChannel(_ open: OpenChannel) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("OPENCHANNEL \(notConnected)")] }
        func fail(_ reason: String) -> [ChannelServerAction] {
            [.send(.openChannelResult(OpenChannelResult(childRelID: open.childRelID, openID: open.openID,
                                                        status: Self.statusUnsuccessful))),
             .rejected("OPENCHANNEL of channel \(open.childRelID): \(reason)")]
        }
        guard let index = offeredIndex(open.childRelID) else { return fail("no such channel was offered") }
        guard !channels[index].rescinded else { return fail("the channel was rescinded") }
        switch channels[index].state {
        case .closed: break
        case .opening, .open: return fail("the channel is already open")
        case .unoffered: return fail("no such channel was offered")
        }
        let handle = open.ringBufferGPADL
        guard let gpadl = gpadls[handle], gpadl.childRelID == open.childRelID else {
            return fail("ring GPADL \(hex(handle)) is not a GPADL of this channel")
        }
        guard case .created(let ranges) = gpadl.state else {
            return fail("ring GPADL \(hex(handle)) is being created or torn down")
        }
        guard ranges.count == 1, let range = ranges.first, range.byteOffset == 0,
              Int(range.byteCount) == range.pageNumbers.count * GPARange.pageSize else {
            return fail("ring GPADL \(hex(handle)) is not one range of whole pages")
        }
        // Each ring needs its control page and at least one data page.
        let pageCount = range.pageNumbers.count
        let offset = Int(open.downstreamRingBufferPageOffset)
        guard offset >= 2, offset <= pageCount - 2 else {
            return fail("downstream ring offset \(offset) in a \(pageCount)-page ring GPADL leaves a ring under 2 pages")
        }
        let request = ChannelOpenRequest(
            childRelID: open.childRelID, openID: open.openID,
            connectionID: open.childRelID | Self.channelConnectionIDBase, ringPages: range.pageNumbers,
            downstreamPageOffset: open.downstreamRingBufferPageOffset, targetVP: open.targetVP, userData: open.userData)
        channels[index].state = .opening(OpenChannelState(request: request, ringGPADL: handle))
        return [.open(request)]
    }

    private mutating func closeChannel(_ close: CloseChannel) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("CLOSECHANNEL \(notConnected)")] }
        let relID = close.childRelID
        guard let index = offeredIndex(relID) else {
            return [.rejected("CLOSECHANNEL of channel \(relID): no such channel was offered")]
        }
        // Linux closes a rescinded channel it had open; hv closed it when it rescinded it.
        if channels[index].rescinded { return [] }
        guard case .open = channels[index].state else {
            return [.rejected("CLOSECHANNEL of channel \(relID): the channel is not open")]
        }
        channels[index].state = .closed
        return [.close(childRelID: relID)] + completeDeferredTeardowns(of: relID)
    }

    private mutating func relIDReleased(_ released: RelIDReleased) -> [ChannelServerAction] {
        guard case .connected = connection else { return [.rejected("RELID_RELEASED \(notConnected)")] }
        let relID = released.childRelID
        guard let index = offeredIndex(relID) else {
            return [.rejected("RELID_RELEASED of channel \(relID): no such channel was offered")]
        }
        guard case .closed = channels[index].state else {
            return [.rejected("RELID_RELEASED of channel \(relID): the channel is open")]
        }
        // Linux does not tear GPADLs down after a rescind; they go with the relid.
        gpadls = gpadls.filter { $0.value.childRelID != relID }
        channels[index].state = .unoffered
        channels[index].rescinded = false
        return []
    }

    private mutating func modifyChannel(_ modify: ModifyChannel) -> [ChannelServerAction] {
        guard case .connected(let version, _) = connection else { return [.rejected("MODIFYCHANNEL \(notConnected)")] }
        guard version >= .win10V4_1 else {
            return [.rejected("MODIFYCHANNEL needs protocol 4.1, the connection has \(version)")]
        }
        let acknowledges = version >= .win10V5_3
        func response(_ status: UInt32) -> [ChannelServerAction] {
            guard acknowledges else { return [] }
            return [.send(.modifyChannelResponse(ModifyChannelResponse(childRelID: modify.childRelID,
                                                                       status: Int32(bitPattern: status))))]
        }
        guard let index = offeredIndex(modify.childRelID), !channels[index].rescinded,
              case .open(var open) = channels[index].state else {
            return response(Self.statusUnsuccessful)
                + [.rejected("MODIFYCHANNEL of channel \(modify.childRelID): the channel is not open")]
        }
        open.request.targetVP = modify.targetVP
        channels[index].state = .open(open)
        return [.retarget(childRelID: modify.childRelID, targetVP: modify.targetVP)] + response(0)
    }

    private mutating func tlConnectRequest(_ request: TLConnectRequest) -> [ChannelServerAction] {
        guard case .connected(let version, _) = connection else {
            return [.rejected("TL_CONNECT_REQUEST \(notConnected)")]
        }
        guard version >= .win10V4_1 else { return [] }
        return [.send(.tlConnectResult(TLConnectResult(endpointID: request.guestEndpointID,
                                                       serviceID: request.hostServiceID,
                                                       status: Self.statusConnectionRefused)))]
    }

    // MARK: - Helpers

    private func channelIndex(_ relID: UInt32) -> Int? {
        guard relID >= 1, Int(relID) <= channels.count else { return nil }
        return Int(relID) - 1
    }

    /// The index of a channel the guest currently knows about: offered in this connection and not released.
    private func offeredIndex(_ relID: UInt32) -> Int? {
        guard let index = channelIndex(relID), channels[index].state != .unoffered else { return nil }
        return index
    }

    private func relID(_ index: Int) -> UInt32 { UInt32(truncatingIfNeeded: index + 1) }

    private var notConnected: String {
        if case .disconnecting = connection { return "while the guest is unloading" }
        return "before INITIATE_CONTACT"
    }
}

private func hex(_ value: some BinaryInteger) -> String { "0x" + String(value, radix: 16) }

private func name(_ type: ChannelMessageType) -> String { "message type \(type.rawValue) (\(type))" }

/// Where the connection stands.
private enum Connection: Sendable {
    case disconnected
    case connected(version: VMBusVersion, offersSent: Bool)
    /// Unloading or reconnecting, waiting for channel opens in flight; `then` runs when they complete.
    case disconnecting(then: PendingAction)
}

/// What a disconnect does once every channel is closed.
private enum PendingAction: Sendable {
    case unloadResponse
    case contact(InitiateContact, connectionID: UInt32)
}

/// An open (or opening) channel: what the shell was given and which GPADL holds the rings.
private struct OpenChannelState: Sendable, Equatable {
    var request: ChannelOpenRequest
    var ringGPADL: UInt32
}

private enum ChannelState: Sendable, Equatable {
    /// Not offered in this connection: before REQUESTOFFERS, after RELID_RELEASED, after an unload.
    case unoffered
    case closed
    /// `.open` was returned; `openCompleted` has not been called.
    case opening(OpenChannelState)
    case open(OpenChannelState)
}

private struct Channel: Sendable {
    let spec: ChannelOfferSpec
    var state: ChannelState = .unoffered
    /// RESCINDCHANNELOFFER was sent; the guest still holds the relid until RELID_RELEASED.
    var rescinded = false
    /// The host removed the device: it is never offered again.
    var removed = false

    init(spec: ChannelOfferSpec) { self.spec = spec }

    var isOpening: Bool {
        if case .opening = state { return true }
        return false
    }
}

private struct GPADL: Sendable {
    let childRelID: UInt32
    /// Pages it describes (or announced, while receiving): what it counts against the limits.
    let pageCount: Int
    var state: State

    enum State: Sendable {
        /// GPADL_BODY messages are still due.
        case receiving(words: [UInt64], announcedWords: Int, rangeCount: Int)
        case created([GPARange])
        /// The guest asked for the teardown while the ring was in use; answered when the channel closes.
        case tearingDown([GPARange])
    }

    var isReceiving: Bool {
        if case .receiving = state { return true }
        return false
    }

    var isTearingDown: Bool {
        if case .tearingDown = state { return true }
        return false
    }
}
