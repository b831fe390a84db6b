// NetVSPDevice: its offer, and the whole path on a real partition whose vCPUs never run. The test plays the Linux
// guest on the VMBus rings in guest memory (messages built by NetVSPLinuxGuest's hand-written encoders), the
// channel thread runs the device, and a fake back end stands in for the host network.

import Glibc
import KVM
import Logging
import NetworkBackends
import Partition
import Synchronization
import TestSupport
import Testing
@testable import VMBus
@testable import VSP

/// A host network that records what it is given and delivers what the test injects, on the test's thread.
final class FakeNetworkBackend: NetworkBackend {
    let name = "fake"
    let sent = Mutex<[[UInt8]]>([])
    let receiver = Mutex<(@Sendable (UnsafeRawBufferPointer) -> Bool)?>(nil)
    let starts = Atomic<Int>(0)
    let stops = Atomic<Int>(0)

    func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        let copies = frames.map { Array($0) }
        sent.withLock { $0 += copies }
        return frames.count
    }

    func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        let started = receiver.withLock { current -> Bool in
            guard current == nil else { return false }
            current = receive
            return true
        }
        guard started else { throw NetworkBackendError("fake: already started") }
        starts.add(1, ordering: .relaxed)
    }

    func stop() {
        if receiver.withLock({ $0.take() }) != nil { stops.add(1, ordering: .relaxed) }
    }

    var counters: NetworkBackendCounters { NetworkBackendCounters() }

    /// A frame from the host network; nil when receive is not started.
    func inject(_ frame: [UInt8]) -> Bool? {
        guard let receive = receiver.withLock({ $0 }) else { return nil }
        return frame.withUnsafeBytes { receive($0) }
    }
}

let netVSPKVMReady = access("/dev/kvm", R_OK | W_OK) == 0

@Suite struct NetVSPDeviceIdentityTests {
    @Test func offerAndIdentity() {
        let mac: [UInt8] = [0x00, 0x15, 0x5D, 0xAB, 0xCD, 0xEF]
        let device = NetVSPDevice(mac: mac, backend: FakeNetworkBackend(), logger: Logger(label: "test"))
        #expect(device.offer.interfaceType == GUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")!)
        #expect(device.offer.interfaceInstance == GUID("68766e74-7673-4070-8000-00155dabcdef")!)
        #expect(NetVSPDevice(mac: mac, backend: NullBackend(), logger: Logger(label: "test")).offer == device.offer, "stable")
        #expect(NetVSPDevice.instanceID(mac: [2, 0, 0, 0, 0, 1]) != device.offer.interfaceInstance)
        #expect(device.name == "netvsp 00:15:5d:ab:cd:ef")
        #expect(device.pollInterval > 0 && device.pollInterval < 1e-3)
        #expect(device.counters == NetVSPCounters())
    }
}

@Suite(.enabled(if: netVSPKVMReady, "needs /dev/kvm"))
final class NetVSPDeviceTests {
    let partition: Partition
    let hyperv: HyperVInterface
    let backend = FakeNetworkBackend()
    let device: NetVSPDevice
    let host: VMBusHost
    static let simp: UInt64 = 0x10000, siefp: UInt64 = 0x11000, input: UInt64 = 0x12000
    static let ringPages = (0..<16).map { UInt64(0x100 + $0) }      // 8 pages each way
    static let recvPages = (0..<16).map { UInt64(0x200 + 2 * $0) }  // scattered, as vzalloc's are
    static let sendPages = (0..<8).map { UInt64(0x300 + $0) }
    static let requestAddress: UInt64 = 0x38_0000 + 4096 - 20
    static let mac = LinuxNetVSC.mac
    var offer: OfferChannel?
    var outbound: RingBufferWriter<GPADLRingMemory>?
    var inbound: RingBufferReader<GPADLRingMemory>?
    var nextID: UInt64 = 1

    init() throws {
        let logger = Logger(label: "test")
        partition = try Partition(system: try KVMSystem(),
                                  configuration: PartitionConfiguration(memorySize: 32 << 20, cpuCount: 1,
                                                                        hypervisorLeaves: HyperVCPUID.leaves(), vmbus: true),
                                  logger: logger)
        hyperv = try HyperVInterface(partition: partition)
        try partition.install(hypervisor: hyperv)
        device = NetVSPDevice(mac: Self.mac, backend: backend, logger: logger)
        host = VMBusHost(partition: partition, hyperv: hyperv, devices: [device])
        #expect(hyperv.writeMSR(HyperVMSR.guestOSID, value: 0x8100_0000_0000_0000, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.messagePage, value: Self.simp | 1, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.eventFlagsPage, value: Self.siefp | 1, vp: 0))
        #expect(hyperv.writeMSR(HyperVMSR.sint0 + 2, value: 0xF3, vp: 0))
    }

    deinit { host.stop() }

    // MARK: vmbus_drv as the guest

    func post(_ message: ChannelMessage) throws -> HVStatus {
        let payload = message.bytes
        let connection: UInt32 = if case .initiateContact = message { 4 } else { 1 }
        try partition.memory.write(le(connection) + le(UInt32(0)) + le(UInt32(1)) + le(UInt32(payload.count)) + payload,
                                   at: Self.input)
        return hyperv.hypercall(control: UInt64(HypercallCode.postMessage), input: Self.input, output: 0, vp: 0)
    }

    func receiveMessages() throws -> [ChannelMessage] {
        var messages: [ChannelMessage] = []
        let slot = Self.simp + 2 * 256
        while true {
            let bytes = try partition.memory.read(at: slot, count: 256)
            guard bytes.netU32(0) != 0 else { return messages }
            messages.append(try ChannelMessage.decode(bytes[16..<(16 + Int(bytes[4]))]))
            try partition.memory.write(le(UInt32(0)), at: slot)
            if bytes[5] & 1 != 0 { #expect(hyperv.writeMSR(HyperVMSR.endOfMessage, value: 0, vp: 0)) }
        }
    }

    func createGPADL(_ handle: UInt32, pages: [UInt64]) throws {
        let offer = try #require(offer)
        let range = GPARange(byteCount: UInt32(pages.count * 4096), byteOffset: 0, pageNumbers: pages)
        let (header, bodies) = try GPADLHeader.messages(childRelID: offer.childRelID, gpadl: handle, ranges: [range])
        #expect(try post(.gpadlHeader(header)) == .success)
        for body in bodies { #expect(try post(.gpadlBody(body)) == .success) }
        guard case .gpadlCreated(let created) = try receiveMessages().first else {
            Issue.record("no GPADL_CREATED")
            return
        }
        #expect(created.status == 0)
    }

    /// INITIATE_CONTACT, REQUESTOFFERS, the ring GPADL and OPENCHANNEL.
    func openChannel() throws {
        let contact = InitiateContact(versionRequested: .win10V5_3, targetVP: 0, interruptPageOrMessageSINT: 2,
                                      monitorPage1: 0, monitorPage2: 0)
        #expect(try post(.initiateContact(contact)) == .success)
        _ = try receiveMessages()
        #expect(try post(.requestOffers) == .success)
        let offers = try receiveMessages().compactMap { if case .offerChannel(let offer) = $0 { offer } else { nil } }
        guard let first = offers.first else {
            Issue.record("no offer")
            return
        }
        offer = first
        #expect(offers.count == 1 && offer?.interfaceType == .network)
        #expect(offer?.interfaceInstance == NetVSPDevice.instanceID(mac: Self.mac))
        try createGPADL(1, pages: Self.ringPages)
        let request = OpenChannel(childRelID: offer!.childRelID, openID: offer!.childRelID, ringBufferGPADL: 1, targetVP: 0,
                                  downstreamRingBufferPageOffset: 8)
        #expect(try post(.openChannel(request)) == .success)
        guard case .openChannelResult(let result) = try receiveMessages().first else {
            Issue.record("no OPENCHANNEL_RESULT")
            return
        }
        #expect(result.status == 0)
        outbound = try RingBufferWriter(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: Self.ringPages[..<8]))
        inbound = try RingBufferReader(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: Self.ringPages[8...]))
    }

    /// Writes a packet on the guest's outbound ring and signals if the ring rules say so; returns its transaction id.
    @discardableResult
    func write(_ type: PacketType, flags: UInt16 = 1, header: [UInt8] = [], payload: [UInt8], id: UInt64? = nil) throws -> UInt64 {
        let transaction = id ?? { nextID += 1; return nextID }()
        #expect(try outbound!.write(type: type, flags: flags, transactionID: transaction, header: header, payload: payload) == .written)
        if try outbound!.commit() {
            #expect(hyperv.hypercall(control: UInt64(HypercallCode.signalEvent) | HypercallCode.fastBit,
                                     input: UInt64(offer!.connectionID), output: 0, vp: 0) == .success)
        }
        return transaction
    }

    /// The next packet from the device (waits up to 5 s for the channel thread).
    func next() throws -> RingPacket? {
        for _ in 0..<500 {
            if let packet = try inbound!.next(maxPacketSize: 1 << 16) {
                // The device asked to be told when there is room (pending_send_sz): signal, as hv_pkt_iter_close does.
                if try inbound!.commit() {
                    #expect(hyperv.hypercall(control: UInt64(HypercallCode.signalEvent) | HypercallCode.fastBit,
                                             input: UInt64(offer!.connectionID), output: 0, vp: 0) == .success)
                }
                return packet
            }
            usleep(10_000)
        }
        return nil
    }

    func payload(_ packet: RingPacket) -> [UInt8] { Array(packet.bytes[(Int(packet.descriptor.dataOffset8) * 8)...]) }

    /// An NVSP request and its completion.
    func request(_ message: [UInt8]) throws -> [UInt8]? {
        let id = try write(.dataInband, payload: message)
        guard let reply = try next() else { return nil }
        #expect(reply.descriptor.type == .completion && reply.descriptor.transactionID == id)
        return payload(reply)
    }

    /// The RNDIS message of a transfer-page packet, read from the receive buffer, and the packet completed.
    func readTransfer(_ packet: RingPacket) throws -> [[UInt8]] {
        #expect(packet.descriptor.type == .dataUsingTransferPages)
        let header = Array(packet.typeSpecificHeader)
        #expect(header.netU16(0) == 0xCAFE)
        var messages: [[UInt8]] = []
        for index in 0..<Int(header.netU32(4)) {
            let count = Int(header.netU32(8 + 8 * index)), offset = Int(header.netU32(12 + 8 * index))
            var bytes: [UInt8] = []
            for position in offset..<offset + count {
                bytes.append(try partition.memory.read(at: Self.recvPages[position / 4096] << 12 + UInt64(position % 4096), count: 1)[0])
            }
            messages.append(bytes)
        }
        try write(.completion, flags: 0, payload: net32(108) + net32(1), id: packet.descriptor.transactionID)
        return messages
    }

    /// An RNDIS control request in page buffers; returns its answer.
    func rndis(_ message: [UInt8]) throws -> [UInt8]? {
        try partition.memory.write(message, at: Self.requestAddress)
        var header = net32(0) + net32(0)
        let ranges = LinuxNetVSC.pageRanges(at: Self.requestAddress, count: message.count)
        header.netPut32(4, UInt32(ranges.count))
        for range in ranges { header += net32(range.len) + net32(range.offset) + net64(range.pfn) }
        let id = try write(.dataUsingGPADirect, header: header,
                           payload: LinuxNetVSC.nvsp(107, net32(1) + net32(0xFFFF_FFFF) + net32(0)))
        // The answer (a transfer-page packet) and the request's completion, in either order.
        var answer: [UInt8]?
        var completed = false
        while answer == nil || !completed {
            guard let packet = try next() else { break }
            if packet.descriptor.type == .completion {
                #expect(packet.descriptor.transactionID == id && payload(packet).netU32(4) == 1)
                completed = true
            } else {
                answer = try readTransfer(packet).first { $0.netU32(0) != 7 }
            }
        }
        return answer
    }

    func waitFor(_ condition: () -> Bool) {
        for _ in 0..<500 where !condition() { usleep(10_000) }
    }

    // MARK: tests

    @Test func linuxBringsTheNICUpAndFramesFlowBothWays() throws {
        try openChannel()
        // netvsc_connect_vsp and netvsc_init_buf.
        #expect(try request(LinuxNetVSC.nvsp(1, net32(0x60001) + net32(0x60001)))?.netU32(12) == 1)
        try write(.dataInband, flags: 0, payload: LinuxNetVSC.nvsp(125, net32(1514) + net32(0) + net64(0xAC)))
        try write(.dataInband, flags: 0, payload: LinuxNetVSC.nvsp(100, net32(6) + net32(30)))
        try createGPADL(0xE001, pages: Self.recvPages)
        try createGPADL(0xE002, pages: Self.sendPages)
        let recv = try #require(try request(LinuxNetVSC.nvsp(101, net32(0xE001) + net16(0xCAFE))))
        #expect(recv.netU32(4) == 1 && recv.netU32(16) == 1600 && recv.netU32(20) == 16 * 4096 / 1600)
        #expect(try request(LinuxNetVSC.nvsp(104, net32(0xE002) + net16(0)))?.netU32(8) == 6144)

        // RNDIS: INITIALIZE, a query, the packet filter.
        let initialize = try #require(try rndis(net32(2) + net32(24) + net32(1) + net32(1) + net32(0) + net32(0x4000)))
        #expect(initialize.netU32(0) == 0x8000_0002 && initialize.netU32(12) == 0)
        let mac = try #require(try rndis(net32(4) + net32(28) + net32(2) + net32(0x0101_0101) + net32(0) + net32(20) + net32(0)))
        #expect(Array(mac[24..<30]) == Self.mac)
        #expect(backend.starts.load(ordering: .relaxed) == 0, "no packet filter yet")
        let filter = try #require(try rndis(net32(5) + net32(32) + net32(3) + net32(0x0001_010E) + net32(4) + net32(20) + net32(0) + net32(0x0D)))
        #expect(filter.netU32(12) == 0)
        waitFor { backend.starts.load(ordering: .relaxed) == 1 }
        #expect(backend.starts.load(ordering: .relaxed) == 1)
        #expect(device.status.version == .v61 && device.status.packetFilter == 0x0D)

        // Host → guest.
        let incoming = LinuxNetVSC.frame(length: 200, seed: 1)
        #expect(backend.inject(incoming) == true)
        let delivered = try #require(try next())
        let messages = try readTransfer(delivered)
        #expect(messages.count == 1 && Array(messages[0][44...]) == incoming)

        // Guest → host: a send-buffer section, then page buffers.
        let outgoing = LinuxNetVSC.frame(to: [0x02, 1, 2, 3, 4, 5], length: 300, seed: 2)
        let message = LinuxNetVSC.rndisPacket(frame: outgoing)
        try partition.memory.write(message, at: Self.sendPages[1] << 12 + 2048)  // section 1 starts at 6144
        let sent = try write(.dataInband, payload: LinuxNetVSC.nvsp(107, net32(0) + net32(1) + net32(UInt32(message.count))))
        let completion = try #require(try next())
        #expect(completion.descriptor.transactionID == sent && payload(completion).netU32(4) == 1)
        #expect(backend.sent.withLock { $0 } == [outgoing])
        #expect(device.counters.txFrames == 1 && device.counters.rxFrames == 1)

        // Close: the back end's receive stops.
        #expect(try post(.closeChannel(CloseChannel(childRelID: offer!.childRelID))) == .success)
        #expect(backend.stops.load(ordering: .relaxed) == 1)
        #expect(backend.inject(incoming) == nil)
    }

    @Test func fullInboundRingHoldsThePacketUntilTheGuestMakesRoom() throws {
        try openChannel()
        #expect(try request(LinuxNetVSC.nvsp(1, net32(0x60001) + net32(0x60001)))?.netU32(12) == 1)
        // Each request (an unknown NVSP type) is answered with a 64-byte completion; the guest reads nothing until
        // its 28 KiB inbound ring is nearly full.
        var ids: [UInt64] = []
        for _ in 0..<400 { ids.append(try write(.dataInband, payload: LinuxNetVSC.nvsp(999, []))) }
        waitFor { ((try? inbound!.bytesToRead()) ?? 0) >= 400 * 64 }
        #expect(try inbound!.bytesToRead() == 400 * 64)
        // Room for about 47 more: the device answers those, then stops reading the guest's ring.
        for _ in 0..<100 { ids.append(try write(.dataInband, payload: LinuxNetVSC.nvsp(999, []))) }
        waitFor { device.counters.protocolErrors >= 400 + 47 }
        usleep(50_000)
        #expect(device.counters.protocolErrors < 500, "held back by the full ring")
        // Reading makes room; every request is answered exactly once, in order.
        var answered: [UInt64] = []
        while answered.count < ids.count, let packet = try next() { answered.append(packet.descriptor.transactionID) }
        #expect(answered == ids)
        #expect(device.counters.protocolErrors == 500)
    }
}
