import Glibc
import KVM
import Logging
import Partition
import TestSupport
import Testing
@testable import VMBus
@testable import VSP

let kvmReady = access("/dev/kvm", R_OK | W_OK) == 0

/// VMBusHost end to end on a real partition whose vCPUs never run: the test plays the guest, writing MSRs,
/// posting messages through the hypercall path and reading and writing rings in guest memory, the way a guest's
/// VSC would. The echo device answers on its own thread.
@Suite(.enabled(if: kvmReady, "needs /dev/kvm"))
final class VMBusHostTests {
    let partition: Partition
    let hyperv: HyperVInterface
    let echo = EchoDevice()
    let heartbeat: HeartbeatDevice
    let host: VMBusHost
    static let simp: UInt64 = 0x10000, siefp: UInt64 = 0x11000, input: UInt64 = 0x12000
    static let ringBase: UInt64 = 0x100000
    static let pagesPerRing = 4

    init() throws {
        let logger = Logger(label: "test")
        partition = try Partition(system: try KVMSystem(),
                                  configuration: PartitionConfiguration(memorySize: 32 << 20, cpuCount: 1,
                                                                        hypervisorLeaves: HyperVCPUID.leaves(), vmbus: true),
                                  logger: logger)
        hyperv = try HyperVInterface(partition: partition)
        try partition.install(hypervisor: hyperv)
        heartbeat = HeartbeatDevice(interval: 60, logger: logger)
        host = VMBusHost(partition: partition, hyperv: hyperv, devices: [heartbeat, echo])
        #expect(hyperv.writeMSR(HyperVMSR.guestOSID, value: 0x8100_0000_0000_0000, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.messagePage, value: Self.simp | 1, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.eventFlagsPage, value: Self.siefp | 1, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.sint0 + 2, value: 0xF3, vp: 0))
    }

    deinit { host.stop() }

    // MARK: the guest's side

    /// HvPostMessage as the hypercall page's slow path delivers it.
    func post(_ message: ChannelMessage, connectionID: UInt32 = 1) throws -> HVStatus {
        let payload = message.bytes
        try partition.memory.write(le(connectionID) + le(UInt32(0)) + le(UInt32(1)) + le(UInt32(payload.count)) + payload,
                                   at: Self.input)
        return hyperv.hypercall(control: UInt64(HypercallCode.postMessage), input: Self.input, output: 0, vp: 0)
    }

    /// Empties SINT2's slot message by message, writing EOM when hv flagged more, as vmbus_on_msg_dpc does.
    func receiveMessages() throws -> [ChannelMessage] {
        var messages: [ChannelMessage] = []
        let slot = Self.simp + 2 * 256
        while true {
            let bytes = try partition.memory.read(at: slot, count: 256)
            guard WireReader(bytes).u32(0) != 0 else { return messages }
            messages.append(try ChannelMessage.decode(bytes[16..<(16 + Int(bytes[4]))]))
            try partition.memory.write(le(UInt32(0)), at: slot)
            if bytes[5] & 1 != 0 { #expect(hyperv.writeMSR(HyperVMSR.endOfMessage, value: 0, vp: 0)) }
        }
    }

    func connect() throws -> [OfferChannel] {
        let contact = InitiateContact(versionRequested: .win10V5_3, targetVP: 0, interruptPageOrMessageSINT: 2,
                                      monitorPage1: 0, monitorPage2: 0)
        #expect(try post(.initiateContact(contact), connectionID: 4) == .success)
        guard case .versionResponse(let response) = try receiveMessages().first else {
            Issue.record("no VERSION_RESPONSE")
            return []
        }
        #expect(response.versionSupported)
        #expect(try post(.requestOffers) == .success)
        let messages = try receiveMessages()
        #expect(messages.last == .allOffersDelivered)
        return messages.compactMap { if case .offerChannel(let offer) = $0 { offer } else { nil } }
    }

    func ringPages(_ index: Int) -> [UInt64] {
        let first = (Self.ringBase >> 12) + UInt64(index * 2 * Self.pagesPerRing)
        return (0..<UInt64(2 * Self.pagesPerRing)).map { first + $0 }
    }

    /// GPADL + OPENCHANNEL for `offer`; returns the open result's status.
    func open(_ offer: OfferChannel, gpadl: UInt32, pages: [UInt64]) throws -> UInt32? {
        let range = GPARange(byteCount: UInt32(pages.count * 4096), byteOffset: 0, pageNumbers: pages)
        let (header, bodies) = try GPADLHeader.messages(childRelID: offer.childRelID, gpadl: gpadl, ranges: [range])
        #expect(try post(.gpadlHeader(header)) == .success)
        for body in bodies { #expect(try post(.gpadlBody(body)) == .success) }
        guard case .gpadlCreated(let created) = try receiveMessages().first, created.status == 0 else { return nil }
        let request = OpenChannel(childRelID: offer.childRelID, openID: offer.childRelID, ringBufferGPADL: gpadl,
                                  targetVP: 0, downstreamRingBufferPageOffset: UInt32(Self.pagesPerRing))
        #expect(try post(.openChannel(request)) == .success)
        guard case .openChannelResult(let result) = try receiveMessages().first else { return nil }
        return result.status
    }

    func guestRings(_ pages: [UInt64]) throws -> (outbound: RingBufferWriter<GPADLRingMemory>, inbound: RingBufferReader<GPADLRingMemory>) {
        (try RingBufferWriter(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: pages[..<Self.pagesPerRing])),
         try RingBufferReader(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: pages[Self.pagesPerRing...])))
    }

    /// Waits (up to 5 s) for the device thread to answer.
    func awaitPacket(_ reader: inout RingBufferReader<GPADLRingMemory>) throws -> RingPacket? {
        for _ in 0..<500 {
            if let packet = try reader.next(maxPacketSize: 1 << 16) {
                _ = try reader.commit()
                return packet
            }
            usleep(10_000)
        }
        return nil
    }

    // MARK: tests

    @Test func offersEveryDeviceAndEchoesPackets() throws {
        let offers = try connect()
        #expect(offers.map(\.interfaceType) == [.heartbeat, EchoDevice.classID])
        let echoOffer = offers[1]
        #expect(echoOffer.connectionID != 0 && !echoOffer.monitorAllocated)
        let pages = ringPages(0)
        #expect(try open(echoOffer, gpadl: 7, pages: pages) == 0)
        let channel = try #require(host.channel(of: echo))
        #expect(channel.connectionID == echoOffer.connectionID)

        var (outbound, inbound) = try guestRings(pages)
        for round in 0..<3 {
            let payload = (0..<64).map { UInt8(truncatingIfNeeded: $0 * 7 + round) }
            #expect(try outbound.write(type: .dataInband, transactionID: UInt64(100 + round), payload: payload) == .written)
            if try outbound.commit() {
                #expect(hyperv.hypercall(control: UInt64(HypercallCode.signalEvent) | HypercallCode.fastBit,
                                         input: UInt64(echoOffer.connectionID), output: 0, vp: 0) == .success)
            }
            let echoed = try #require(try awaitPacket(&inbound))
            #expect(echoed.descriptor.transactionID == UInt64(100 + round))
            #expect(Array(echoed.payload.prefix(64)) == payload)
        }
        // hv signalled the guest through SINT2's event flags: bit = child_relid.
        let flags = WireReader(try partition.memory.read(at: Self.siefp + 2 * 256, count: 4)).u32(0)
        #expect(flags & (1 << echoOffer.childRelID) != 0)

        // Close, tear down, unload: the channel's thread is gone and the guest can connect again.
        #expect(try post(.closeChannel(CloseChannel(childRelID: echoOffer.childRelID))) == .success)
        #expect(host.channel(of: echo) == nil)
        #expect(try post(.gpadlTeardown(GPADLTeardown(childRelID: echoOffer.childRelID, gpadl: 7))) == .success)
        #expect(try receiveMessages() == [.gpadlTorndown(GPADLTorndown(gpadl: 7))])
        #expect(try post(.unload) == .success)
        #expect(try receiveMessages() == [.unloadResponse])
        #expect(try connect().count == 2)
    }

    /// A packet the guest wrote just before CLOSECHANNEL, whose signal the channel thread never served, is still
    /// read: Linux's hv_utils and the stub answer a heartbeat and close at once.
    @Test func packetWrittenBeforeCloseIsRead() throws {
        let offers = try connect()
        let pages = ringPages(0)
        #expect(try open(offers[1], gpadl: 7, pages: pages) == 0)
        let channel = try #require(host.channel(of: echo))
        usleep(100_000)   // the channel thread has polled the empty ring and sleeps
        var (outbound, inbound) = try guestRings(pages)
        #expect(try outbound.write(type: .dataInband, transactionID: 5, payload: Array(repeating: 0xA5, count: 64)) == .written)
        _ = try outbound.commit()   // no HvSignalEvent: the close comes first
        #expect(try post(.closeChannel(CloseChannel(childRelID: offers[1].childRelID))) == .success)
        #expect(channel.counters.received.load(ordering: .relaxed) == 1)
        #expect(try inbound.next(maxPacketSize: 1 << 16)?.descriptor.transactionID == 5)
    }

    @Test func gpadlOutsideGuestMemoryIsRefused() throws {
        let offers = try connect()
        let range = GPARange(byteCount: 8 * 4096, byteOffset: 0, pageNumbers: (0..<8).map { (1 << 30) + $0 })
        let (header, _) = try GPADLHeader.messages(childRelID: offers[1].childRelID, gpadl: 9, ranges: [range])
        #expect(try post(.gpadlHeader(header)) == .success)
        guard case .gpadlCreated(let created) = try receiveMessages().first else {
            Issue.record("no GPADL_CREATED")
            return
        }
        #expect(created.status != 0)
    }

    @Test func brokenRingStopsOnlyItsChannel() throws {
        let offers = try connect()
        let pages = ringPages(1)
        #expect(try open(offers[1], gpadl: 3, pages: pages) == 0)
        let channel = try #require(host.channel(of: echo))
        // A write_index past the data area, then a signal.
        try partition.memory.write(le(UInt32(0xFFFF_FFF0)), at: pages[0] << 12)
        _ = host.signalEvent(connectionID: offers[1].connectionID, flag: 0, vp: 0)
        for _ in 0..<500 where channel.counters.ringErrors.load(ordering: .relaxed) == 0 { usleep(10_000) }
        #expect(channel.counters.ringErrors.load(ordering: .relaxed) == 1)
        // The control path still answers.
        #expect(try post(.closeChannel(CloseChannel(childRelID: offers[1].childRelID))) == .success)
        #expect(try post(.unload) == .success)
        #expect(try receiveMessages() == [.unloadResponse])
    }

    @Test func floodOfRequestsIsAnsweredWithBackPressure() throws {
        let offers = try connect()
        // The guest stops reading its slot: answers (here, refusals of bad GPADLs) pile up until hv tells it to retry.
        var statuses: [HVStatus] = []
        let range = GPARange(byteCount: 4096, byteOffset: 0, pageNumbers: [1 << 30])
        for gpadl in 1...UInt32(200) {
            let (header, _) = try GPADLHeader.messages(childRelID: offers[1].childRelID, gpadl: gpadl, ranges: [range])
            statuses.append(try post(.gpadlHeader(header)))
        }
        #expect(statuses.contains(.insufficientBuffers))
        #expect(hyperv.queuedMessages(vp: 0, sint: 2) <= SynIC.queueLimit)
        // Garbage and unknown connections get errors, not crashes.
        #expect(try post(.requestOffers, connectionID: 77) == .invalidConnectionID)
        #expect(host.signalEvent(connectionID: 0x9999, flag: 0, vp: 0) == .invalidConnectionID)
    }
}
