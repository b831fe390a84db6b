import Testing
@testable import VMBus

/// One message of each type with the payload size vmbus-protocol.md §3.1 gives it (and hyperv.h's structs confirm).
let channelMessageSamples: [(message: ChannelMessage, size: Int)] = [
    (.offerChannel(OfferChannel(
        interfaceType: .heartbeat, interfaceInstance: GUID("11112222-3333-4444-5555-666677778888")!,
        flags: [.enumerateDeviceInterface], userDefined: [1, 2, 3], childRelID: 5, connectionID: 0x2005)), 196),
    (.rescindChannelOffer(RescindChannelOffer(childRelID: 5)), 12),
    (.requestOffers, 8),
    (.allOffersDelivered, 8),
    (.openChannel(OpenChannel(childRelID: 5, openID: 5, ringBufferGPADL: 0xE1E10, targetVP: 1,
                              downstreamRingBufferPageOffset: 4, userData: [0xAA])), 148),
    (.openChannelResult(OpenChannelResult(childRelID: 5, openID: 5, status: 0)), 20),
    (.closeChannel(CloseChannel(childRelID: 5)), 12),
    (.gpadlHeader(GPADLHeader(childRelID: 5, gpadl: 0xE1E10, rangeBufferLength: 24, rangeCount: 1,
                              rangeWords: [UInt64(8192), 0x100, 0x101])), 20 + 24),
    (.gpadlBody(GPADLBody(messageNumber: 1, gpadl: 0xE1E10, rangeWords: [0x200, 0x201, 0x202])), 16 + 24),
    (.gpadlCreated(GPADLCreated(childRelID: 5, gpadl: 0xE1E10, status: 0)), 20),
    (.gpadlTeardown(GPADLTeardown(childRelID: 5, gpadl: 0xE1E10)), 16),
    (.gpadlTorndown(GPADLTorndown(gpadl: 0xE1E10)), 12),
    (.relIDReleased(RelIDReleased(childRelID: 5)), 12),
    (.initiateContact(InitiateContact(versionRequested: .win10V5_3, targetVP: 0, interruptPageOrMessageSINT: 2,
                                      monitorPage1: 0x1000, monitorPage2: 0x2000)), 40),
    (.versionResponse(VersionResponse(versionSupported: true, messageConnectionID: 1)), 16),
    (.unload, 8),
    (.unloadResponse, 8),
    (.tlConnectRequest(TLConnectRequest(guestEndpointID: .kvp, hostServiceID: .vss)), 40),
    (.tlConnectRequest(TLConnectRequest(guestEndpointID: .kvp, hostServiceID: .vss, siloID: .mouse)), 56),
    (.modifyChannel(ModifyChannel(childRelID: 5, targetVP: 3)), 16),
    (.tlConnectResult(TLConnectResult(endpointID: .kvp, serviceID: .vss, status: -1)), 44),
    (.modifyChannelResponse(ModifyChannelResponse(childRelID: 5, status: 0)), 16),
]

@Suite struct ChannelMessageTests {
    @Test(arguments: channelMessageSamples)
    func encodedSizeMatchesTheReference(sample: (message: ChannelMessage, size: Int)) {
        #expect(sample.message.bytes.count == sample.size)
    }

    @Test(arguments: channelMessageSamples)
    func roundTrips(sample: (message: ChannelMessage, size: Int)) throws {
        #expect(try ChannelMessage.decode(sample.message.bytes) == sample.message)
    }

    @Test func everyTypeHasASampleAndItsFixedSize() {
        let sampled = Set(channelMessageSamples.map { $0.message.type.rawValue })
        #expect(sampled == Set(ChannelMessageType.allCases.map(\.rawValue)))
        #expect(OfferChannel.size == 196 && OpenChannel.size == 148 && InitiateContact.size == 40)
        #expect(VersionResponse.size == 16 && GPADLHeader.size == 20 && GPADLBody.size == 16)
    }

    @Test func headerCarriesTheTypeAndZeroPadding() {
        let bytes = ChannelMessage.closeChannel(CloseChannel(childRelID: 0x0102_0304)).bytes
        #expect(bytes == [7, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x03, 0x02, 0x01])
    }

    @Test func offerFieldsSitAtTheirOffsets() {
        let offer = OfferChannel(
            interfaceType: .network, interfaceInstance: .scsi, flags: [.namedPipeMode], mmioMegabytes: 0x0102,
            userDefined: [0xEE], subChannelIndex: 3, childRelID: 0x11, monitorID: 0xFF, monitorAllocated: false,
            isDedicatedInterrupt: true, connectionID: 0x2011)
        let bytes = ChannelMessage.offerChannel(offer).bytes
        #expect(Array(bytes[8..<24]) == GUID.network.wireBytes)
        #expect(Array(bytes[24..<40]) == GUID.scsi.wireBytes)
        #expect(bytes[56] == 0x10 && bytes[58] == 0x02 && bytes[59] == 0x01)
        #expect(bytes[60] == 0xEE && bytes[61] == 0 && bytes[179] == 0)
        #expect(bytes[180] == 3)
        #expect(bytes[184] == 0x11 && bytes[188] == 0xFF && bytes[189] == 0 && bytes[190] == 1)
        #expect(Array(bytes[192..<196]) == [0x11, 0x20, 0, 0])
    }

    /// INITIATE_CONTACT exactly as Linux 6.1's vmbus_negotiate_version builds it for 5.3: msgtype 14, version
    /// 0x00050003, target_vcpu = VP of CPU 0, msg_sint = VMBUS_MESSAGE_SINT (2) in byte 16, the rest of that
    /// u64 zero, then the two monitor page GPAs; posted with sizeof(struct vmbus_channel_initiate_contact) = 40.
    @Test func decodesLinuxInitiateContact() throws {
        let linux: [UInt8] = [
            0x0E, 0, 0, 0, 0, 0, 0, 0,                      // header: CHANNELMSG_INITIATE_CONTACT, padding
            0x03, 0x00, 0x05, 0x00,                         // vmbus_version_requested = 5.3
            0x00, 0x00, 0x00, 0x00,                         // target_vcpu = 0
            0x02, 0x00, 0, 0, 0, 0, 0, 0,                   // msg_sint = 2, msg_vtl/reserved = 0
            0x00, 0x30, 0x4A, 0x01, 0, 0, 0, 0,             // monitor_page1 = 0x14A3000
            0x00, 0x40, 0x4A, 0x01, 0, 0, 0, 0,             // monitor_page2 = 0x14A4000
        ]
        guard case .initiateContact(let contact) = try ChannelMessage.decode(linux) else {
            Issue.record("not INITIATE_CONTACT")
            return
        }
        #expect(contact.versionRequested == .win10V5_3)
        #expect(contact.versionRequested.contactsOnConnection4)
        #expect(contact.targetVP == 0)
        #expect(contact.messageSINT == VMBusConstants.messageSINT)
        #expect(contact.messageVTL == 0)
        #expect(contact.monitorPage1 == 0x14A_3000)
        #expect(contact.monitorPage2 == 0x14A_4000)
        #expect(ChannelMessage.initiateContact(contact).bytes == linux)
    }

    /// A ring GPADL as Linux's create_gpadl_header sends it: one range (byte_offset 0, byte_count = both rings),
    /// range_buflen = 8 + 8 × pages, all in the header while it holds ≤ 26 PFNs.
    @Test func decodesAMultiPageGPADLHeader() throws {
        let pfns: [UInt64] = [0x1_0000, 0x1_0001, 0x2_0400, 0x2_0401, 0x7_FFFF, 0x8_0000]
        var bytes: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0]            // CHANNELMSG_GPADL_HEADER
        bytes += [0x0B, 0, 0, 0]                                   // child_relid 11
        bytes += [0x10, 0x1E, 0x0E, 0]                             // gpadl 0xE1E10
        bytes += [56, 0, 1, 0]                                     // range_buflen 8 + 6 × 8, rangecount 1
        bytes += [0x00, 0x60, 0, 0, 0, 0, 0, 0]                    // byte_count 0x6000, byte_offset 0
        for pfn in pfns { bytes += (0..<8).map { UInt8(truncatingIfNeeded: pfn >> (8 * $0)) } }
        guard case .gpadlHeader(let header) = try ChannelMessage.decode(bytes) else {
            Issue.record("not GPADL_HEADER")
            return
        }
        #expect(header.childRelID == 11 && header.gpadl == 0xE1E10)
        #expect(header.isComplete)
        #expect(try header.ranges() == [GPARange(byteCount: 0x6000, byteOffset: 0, pageNumbers: pfns)])
    }

    @Test func splitsALargeGPADLLikeLinuxAndReassemblesIt() throws {
        let range = GPARange(byteCount: 40 * 4096, byteOffset: 0, pageNumbers: (0..<40).map { 0x5000 + $0 })
        let (header, bodies) = try GPADLHeader.messages(childRelID: 2, gpadl: 7, ranges: [range])
        #expect(header.rangeWords.count == 27)                     // range header + 26 PFNs
        #expect(bodies.map(\.rangeWords.count) == [14])
        #expect(ChannelMessage.gpadlHeader(header).bytes.count == 236)
        #expect(!header.isComplete)
        #expect(try ChannelMessage.decode(ChannelMessage.gpadlHeader(header).bytes) == .gpadlHeader(header))
        let words = header.rangeWords + bodies.flatMap(\.rangeWords)
        #expect(words.count == header.announcedWords)
        #expect(try GPARange.parse(words: words, rangeCount: 1, maxPages: GPADLHeader.maxPages) == [range])
    }

    @Test(arguments: ChannelMessageType.allCases.filter { $0.fixedSize > ChannelMessageHeader.size })
    func truncatedMessagesAreRejected(type: ChannelMessageType) {
        let bytes = [UInt8(type.rawValue), 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: type.fixedSize - 9)
        #expect(throws: VMBusError.messageTruncated(type: type.rawValue, length: type.fixedSize - 1,
                                                    required: type.fixedSize)) {
            try ChannelMessage.decode(bytes)
        }
    }

    @Test func messagesShorterThanTheHeaderAreRejected() {
        #expect(throws: VMBusError.messageTruncated(type: 0, length: 0, required: 8)) { try ChannelMessage.decode([]) }
        #expect(throws: VMBusError.messageTruncated(type: 3, length: 5, required: 8)) {
            try ChannelMessage.decode([3, 0, 0, 0, 0])
        }
    }

    @Test(arguments: [UInt32(0), 18, 19, 20, 25, 29, 0x8000_0000, .max])
    func unknownTypesAreRejected(type: UInt32) {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) } + [UInt8](repeating: 0, count: 60)
        #expect(throws: VMBusError.unknownMessageType(type)) { try ChannelMessage.decode(bytes) }
    }

    @Test func messagesLongerThanASynICPayloadAreRejected() {
        let bytes: [UInt8] = [3, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 233)
        #expect(throws: VMBusError.messageTooLong(length: 241, limit: 240)) { try ChannelMessage.decode(bytes) }
    }

    @Test func userBytesAreAlwaysTheirFixedWidth() {
        var offer = OfferChannel(interfaceType: .heartbeat, interfaceInstance: .zero, userDefined: [1, 2],
                                 childRelID: 1, connectionID: 1)
        #expect(offer.userDefined.count == 120 && offer.userDefined.prefix(3) == [1, 2, 0])
        offer.userDefined = [UInt8](repeating: 9, count: 200)
        #expect(offer.userDefined.count == 120)
        #expect(OpenChannel(childRelID: 1, openID: 1, ringBufferGPADL: 1, targetVP: 0,
                            downstreamRingBufferPageOffset: 1).userData.count == 120)
    }

    @Test func trailingBytesAfterAFixedSizeMessageAreIgnored() throws {
        let bytes = ChannelMessage.closeChannel(CloseChannel(childRelID: 9)).bytes + [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(try ChannelMessage.decode(bytes) == .closeChannel(CloseChannel(childRelID: 9)))
    }

    /// GPADL_HEADER bytes with the given counts and range words.
    func gpadlHeader(bufferLength: UInt16, rangeCount: UInt16, words: [UInt64], extra: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x10, 0x1E, 0x0E, 0]
        bytes += [UInt8(bufferLength & 0xFF), UInt8(bufferLength >> 8), UInt8(rangeCount & 0xFF), UInt8(rangeCount >> 8)]
        for word in words { bytes += (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
        return bytes + extra
    }

    @Test func gpadlRangesClaimingMorePagesThanCarriedAreRejected() {
        // Complete per range_buflen (3 words), but byte_count 1 MiB needs 256 PFNs.
        let bytes = gpadlHeader(bufferLength: 24, rangeCount: 1, words: [0x10_0000, 0x100, 0x101])
        #expect(throws: VMBusError.gpaRangePagesMissing(claimed: 256, available: 2)) { try ChannelMessage.decode(bytes) }
        // byte_count 0xFFFFFFFF with offset 0xFFF: 0x100001 pages (no u32 overflow), past any GPADL's limit.
        let huge = gpadlHeader(bufferLength: 16, rangeCount: 1, words: [0x0000_0FFF_FFFF_FFFF, 0x100])
        #expect(throws: VMBusError.gpaTooManyPages(count: 0x10_0001, limit: GPADLHeader.maxPages)) {
            try ChannelMessage.decode(huge)
        }
    }

    @Test func gpadlCountsThatCannotBeRightAreRejected() {
        #expect(throws: VMBusError.gpadlRangeBufferLength(20)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 20, rangeCount: 1, words: [4096, 1]))
        }
        #expect(throws: VMBusError.gpadlRangeBufferLength(8)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 8, rangeCount: 1, words: [4096]))
        }
        #expect(throws: VMBusError.gpadlRangeCount(count: 0, rangeBufferLength: 16)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 16, rangeCount: 0, words: [4096, 1]))
        }
        #expect(throws: VMBusError.gpadlRangeCount(count: 0xFFFF, rangeBufferLength: 0xFFF8)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 0xFFF8, rangeCount: 0xFFFF, words: [4096, 1]))
        }
        #expect(throws: VMBusError.gpadlMoreDataThanAnnounced(carried: 3, announced: 2)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 16, rangeCount: 1, words: [4096, 1, 2]))
        }
        #expect(throws: VMBusError.messageMisaligned(type: 8, length: 39)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 16, rangeCount: 1, words: [4096, 1], extra: [0, 0, 0]))
        }
        #expect(throws: VMBusError.gpaRangeInvalid(byteCount: 4096, byteOffset: 4096)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 16, rangeCount: 1, words: [4096 | 4096 << 32, 1]))
        }
        #expect(throws: VMBusError.gpaRangeInvalid(byteCount: 0, byteOffset: 0)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 16, rangeCount: 1, words: [0, 1]))
        }
        // Two ranges announced; the first (3 pages) uses up every word.
        #expect(throws: VMBusError.gpaRangeHeaderMissing(index: 1)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 32, rangeCount: 2, words: [12288, 1, 2, 3]))
        }
        #expect(throws: VMBusError.gpaRangeTrailingData(words: 1)) {
            try ChannelMessage.decode(self.gpadlHeader(bufferLength: 32, rangeCount: 1, words: [8192, 1, 2, 3]))
        }
    }

    @Test func gpadlBodiesAreWholeWords() throws {
        let body: [UInt8] = [9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x10, 0x1E, 0x0E, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0]
        #expect(try ChannelMessage.decode(body) == .gpadlBody(GPADLBody(messageNumber: 1, gpadl: 0xE1E10, rangeWords: [0x1234])))
        #expect(throws: VMBusError.messageMisaligned(type: 9, length: 20)) { try ChannelMessage.decode(Array(body[..<20])) }
        // 240 bytes hold at most 28 PFNs, so no body can carry more.
        #expect(GPADLBody.maxRangeWords == 28 && GPADLHeader.maxRangeWords == 27)
    }

    @Test func pageLimitIsEnforced() {
        let words: [UInt64] = [UInt64(5 * 4096)] + (0..<5).map { UInt64($0) }
        #expect(throws: VMBusError.gpaTooManyPages(count: 5, limit: 4)) {
            try GPARange.parse(words: words, rangeCount: 1, maxPages: 4)
        }
        #expect(GPADLHeader.maxPages == 8190)
    }

    @Test func guidsUseTheMixedEndianWireForm() {
        // HV_HEART_BEAT_GUID as older hyperv.h spelled out its bytes.
        #expect(GUID.heartbeat.wireBytes == [0x39, 0x4F, 0x16, 0x57, 0x15, 0x91, 0x78, 0x4E,
                                             0xAB, 0x55, 0x38, 0x2F, 0x3B, 0xD5, 0x42, 0x2D])
        #expect(GUID("57164f39-9115-4e78-ab55-382f3bd5422d") == .heartbeat)
        #expect(GUID("{9527E630-D0AE-497B-ADCE-E80AB0175CAF}") == .timeSync)
        #expect(GUID.shutdown.description == "0e0b6031-5213-4934-818b-38d90ced39db")
        #expect(GUID.network.description == "f8615163-df3e-46c5-913f-f2d2f965ed0e")
        #expect(GUID(GUID.kvp.description) == .kvp)
        #expect(GUID(wireBytes: GUID.vss.wireBytes) == .vss)
        #expect(GUID("57164f39-9115-4e78-ab55-382f3bd5422") == nil)
        #expect(GUID("57164f39-9115-4e78-ab55+382f3bd5422d") == nil)
        #expect(GUID("+7164f39-9115-4e78-ab55-382f3bd5422d") == nil)
        #expect(GUID("57164f3g-9115-4e78-ab55-382f3bd5422d") == nil)
    }

    @Test func versionsOrderAndSplit() {
        #expect(VMBusVersion.win10V5_3.rawValue == 0x0005_0003)
        #expect(VMBusVersion.win8.rawValue == 0x0002_0004)
        #expect(VMBusVersion.linux61Requests == VMBusVersion.linux61Requests.sorted(by: >))
        #expect(VMBusVersion.linux61Requests.first == .win10V5_3 && VMBusVersion.linux61Requests.last == .win8)
        #expect(!VMBusVersion.win10V4_1.contactsOnConnection4 && VMBusVersion.win10V5.contactsOnConnection4)
        #expect(VMBusVersion.win8_1.description == "3.0")
    }
}
