import Dispatch
import Testing
@testable import Devices
@testable import Partition

/// TX descriptor processing and RX into the ring, against guest memory.
@Suite struct E1000DataPathTests {
    static let eopRS = E1000Bits.txEOP | E1000Bits.txReportStatus

    @Test func legacyTransmitWithWrapAroundAndChains() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 8, start: 6)
        let first = Frames.ethernet(to: Frames.peer, from: E1000Rig.mac, payload: Frames.pattern(200, seed: 1))
        let second = Frames.ethernet(to: Frames.peer, from: E1000Rig.mac, payload: Frames.pattern(90, seed: 2))
        let third = Frames.ethernet(to: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], from: E1000Rig.mac, payload: Frames.pattern(20, seed: 3))
        let buffer = E1000Rig.buffers
        // Frame 1 in three pieces over descriptors 6, 7 and 0 (the ring wraps); frame 2 in descriptor 1 with
        // RS; frame 3 (short: padded to 60) in descriptor 2 without RS.
        try rig.memory.write(first, at: buffer)
        try rig.legacyTX(6, buffer: buffer, length: 14, command: 0)
        try rig.legacyTX(7, buffer: buffer + 14, length: 100, command: 0)
        try rig.legacyTX(0, buffer: buffer + 114, length: first.count - 114, command: Self.eopRS)
        try rig.memory.write(second, at: buffer + 0x1000)
        try rig.legacyTX(1, buffer: buffer + 0x1000, length: second.count, command: Self.eopRS)
        try rig.memory.write(third, at: buffer + 0x2000)
        try rig.legacyTX(2, buffer: buffer + 0x2000, length: third.count, command: E1000Bits.txEOP)
        _ = rig.read(E1000Register.icr)
        rig.write(E1000Register.tdt, 3)
        #expect(rig.backend.frames == [first, second, third + [UInt8](repeating: 0, count: 60 - third.count)])
        #expect(rig.read(E1000Register.tdh) == 3)
        #expect(try rig.txStatus(6) == 0 && rig.txStatus(7) == 0)
        #expect(try rig.txStatus(0) & E1000Bits.txDescriptorDone != 0)
        #expect(try rig.txStatus(1) & E1000Bits.txDescriptorDone != 0)
        #expect(try rig.txStatus(2) == 0)
        #expect(rig.read(E1000Register.icr) == E1000Bits.txdw | E1000Bits.txqe)
        #expect(rig.read(E1000Register.bptc) == 1)
        #expect(rig.nic.counters.framesTransmitted == 3)
        // A packet split across two kicks: nothing leaves until its EOP.
        try rig.legacyTX(3, buffer: buffer, length: 14, command: 0)
        rig.write(E1000Register.tdt, 4)
        #expect(rig.backend.frames.count == 3)
        try rig.legacyTX(4, buffer: buffer + 14, length: first.count - 14, command: Self.eopRS)
        rig.write(E1000Register.tdt, 5)
        #expect(rig.backend.frames.count == 4 && rig.backend.frames.last == first)
        // Transmit off: TDT moves, nothing is processed until TCTL.EN (whose write kicks too).
        rig.write(E1000Register.tctl, 0)
        try rig.legacyTX(5, buffer: buffer + 0x1000, length: second.count, command: Self.eopRS)
        rig.write(E1000Register.tdt, 6)
        #expect(rig.read(E1000Register.tdh) == 5)
        rig.write(E1000Register.tctl, E1000Bits.tctlEnable)
        #expect(rig.read(E1000Register.tdh) == 6 && rig.backend.frames.count == 5)
    }

    @Test func checksumOffloadThroughAContextDescriptor() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        let frame = Frames.tcp(payload: Frames.pattern(333), sequence: 1000, flags: 0x18, id: 7, withLength: true)
        #expect(Frames.checksumsVerify(frame) == (false, false))
        try rig.memory.write(frame, at: E1000Rig.buffers)
        // IP header 14...33 (checksum at 24), TCP from 34 (checksum at 50) to the end.
        try rig.contextTX(0, ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, payloadLength: 0,
                          tucmd: E1000Bits.tucmdTCP | E1000Bits.tucmdIPv4, headerLength: 0, mss: 0)
        try rig.dataTX(1, buffer: E1000Rig.buffers, length: 40, command: 0,
                       options: E1000Bits.poptsIPChecksum | E1000Bits.poptsL4Checksum)
        try rig.dataTX(2, buffer: E1000Rig.buffers + 40, length: frame.count - 40, command: Self.eopRS, options: 0)
        rig.write(E1000Register.tdt, 3)
        let sent = try #require(rig.backend.frames.first)
        #expect(sent.count == frame.count)
        #expect(Frames.checksumsVerify(sent) == (true, true))
        #expect(Array(sent[54...]) == Frames.pattern(333))
        #expect(try rig.txStatus(2) & E1000Bits.txDescriptorDone != 0)
        // Legacy descriptors insert a checksum too (CSS to the end, stored at CSO): a UDP-style sum over bytes 14... .
        try rig.memory.write(frame, at: E1000Rig.buffers + 0x1000)
        try rig.legacyTX(3, buffer: E1000Rig.buffers + 0x1000, length: frame.count, command: Self.eopRS | E1000Bits.txInsertChecksum)
        try rig.memory.store(UInt8(50), at: E1000Rig.txRing + 3 * 16 + 10)      // CSO
        try rig.memory.store(UInt8(34), at: E1000Rig.txRing + 3 * 16 + 13)      // CSS
        rig.write(E1000Register.tdt, 4)
        let legacy = try #require(rig.backend.frames.last)
        #expect(Frames.checksumsVerify(legacy).l4)
    }

    @Test func tcpSegmentation() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 16)
        let payload = Frames.pattern(2500, seed: 5)
        let mss = 1000
        // As Linux hands a TSO packet over: IP total length and checksum 0, TCP checksum = pseudo-header sum without length.
        let packet = Frames.tcp(payload: payload, sequence: 0xFFFF_FF00, flags: 0x19, id: 0xFFFE, withLength: false)   // FIN|PSH|ACK
        try rig.memory.write(packet, at: E1000Rig.buffers)
        try rig.contextTX(0, ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, payloadLength: payload.count,
                          tucmd: E1000Bits.tucmdTCP | E1000Bits.tucmdIPv4 | E1000Bits.txTSE, headerLength: 54, mss: UInt16(mss))
        // Header and payload in uneven pieces.
        let options = E1000Bits.poptsIPChecksum | E1000Bits.poptsL4Checksum
        try rig.dataTX(1, buffer: E1000Rig.buffers, length: 54, command: E1000Bits.txTSE, options: options)
        try rig.dataTX(2, buffer: E1000Rig.buffers + 54, length: 1234, command: E1000Bits.txTSE, options: 0)
        try rig.dataTX(3, buffer: E1000Rig.buffers + 54 + 1234, length: packet.count - 54 - 1234, command: E1000Bits.txTSE | Self.eopRS, options: 0)
        rig.write(E1000Register.tdt, 4)
        let segments = rig.backend.frames
        #expect(segments.count == 3)
        for (n, segment) in segments.enumerated() {
            let chunk = Array(payload[n * mss..<min((n + 1) * mss, payload.count)])
            #expect(segment.count == 54 + chunk.count)
            #expect(Array(segment[54...]) == chunk)
            #expect(Array(segment[0..<14]) == Array(packet[0..<14]))
            #expect(Int(segment.bigEndian16(at: 16)) == 40 + chunk.count)                  // IP total length
            #expect(segment.bigEndian16(at: 18) == 0xFFFE &+ UInt16(n))                      // IP ID (wraps)
            #expect(segment.bigEndian32(at: 38) == 0xFFFF_FF00 &+ UInt32(n * mss))            // sequence (wraps)
            let flags = segment[47]
            #expect(flags & 0x10 != 0)                                                         // ACK everywhere
            #expect(flags & 0x09 == (n == segments.count - 1 ? 0x09 : 0))                    // FIN, PSH only last
            #expect(Frames.checksumsVerify(segment) == (true, true), "segment \(n)")
        }
        #expect(try rig.txStatus(3) & E1000Bits.txDescriptorDone != 0)
        #expect(rig.read(E1000Register.tsctc) == 1)
        #expect(rig.read(E1000Register.gptc) == 3)
    }

    @Test func vlanTagInsertion() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        rig.write(E1000Register.ctrl, rig.read(E1000Register.ctrl) | E1000Bits.ctrlVLANEnable)
        let frame = Frames.ethernet(to: Frames.peer, from: E1000Rig.mac, payload: Frames.pattern(64))
        try rig.memory.write(frame, at: E1000Rig.buffers)
        try rig.legacyTX(0, buffer: E1000Rig.buffers, length: frame.count, command: Self.eopRS | E1000Bits.txVLAN)
        try rig.memory.store(UInt16(0x2064), at: E1000Rig.txRing + 14)                      // special: PCP 1, VID 100
        rig.write(E1000Register.tdt, 1)
        let sent = try #require(rig.backend.frames.first)
        #expect(Array(sent[0..<12]) == Array(frame[0..<12]))
        #expect(Array(sent[12..<16]) == [0x81, 0x00, 0x20, 0x64])
        #expect(Array(sent[16...]) == Array(frame[12...]))
    }

    @Test func receiveIntoTheRingWithWrapAround() throws {
        let rig = try E1000Rig()
        try rig.setUpReceive(count: 8, head: 6, tail: 2)                                     // descriptors 6, 7, 0, 1 free
        _ = rig.read(E1000Register.icr)
        rig.write(E1000Register.ims, E1000Bits.rxt0)
        var frames: [[UInt8]] = []
        for n in 0..<4 {
            let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(100 + n * 300, seed: n))
            frames.append(frame)
            #expect(rig.backend.deliver(frame))
        }
        for (n, index) in [6, 7, 0, 1].enumerated() {
            let descriptor = try rig.rxDescriptor(index)
            #expect(descriptor.status & (E1000Bits.rxDone | E1000Bits.rxEndOfPacket) == E1000Bits.rxDone | E1000Bits.rxEndOfPacket)
            #expect(descriptor.status & E1000Bits.rxIgnoreChecksum != 0)                     // RXCSUM off
            #expect(descriptor.length == frames[n].count + 4)                                 // FCS counted
            #expect(try rig.memory.read(at: rig.rxBuffer(index), count: frames[n].count) == frames[n])
        }
        #expect(rig.read(E1000Register.rdh) == 2)
        #expect(rig.interrupts.level(rig.gsi))
        #expect(rig.read(E1000Register.icr) & E1000Bits.rxt0 != 0)
        // Ring full (RDH == RDT): dropped, counted, and the back end told so.
        #expect(!rig.backend.deliver(frames[0]))
        #expect(rig.nic.counters.receiveNoBuffers == 1)
        #expect(rig.read(E1000Register.rnbc) == 1)
        // The driver hands descriptors back; RX goes on from RDH.
        rig.write(E1000Register.rdt, 4)
        #expect(rig.backend.deliver(frames[1]))
        #expect(rig.read(E1000Register.rdh) == 3)
        #expect(try rig.rxDescriptor(2).length == frames[1].count + 4)
        // Short frames are padded to 60 bytes; SECRC leaves the FCS out of the length.
        rig.write(E1000Register.rctl, rig.read(E1000Register.rctl) | E1000Bits.rctlStripCRC)
        #expect(rig.backend.deliver(Frames.ethernet(to: E1000Rig.mac, payload: [1, 2, 3])))
        #expect(try rig.rxDescriptor(3).length == 60)
    }

    @Test func receiveAcrossSeveralBuffers() throws {
        let rig = try E1000Rig()
        // BSIZE 11 without BSEX: 256-byte buffers.
        try rig.setUpReceive(count: 8, head: 0, tail: 7, rctl: E1000Bits.rctlEnable | 3 << 16)
        let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(586))               // 600 bytes + FCS
        #expect(rig.backend.deliver(frame))
        let lengths = try (0..<3).map { try rig.rxDescriptor($0).length }
        #expect(lengths == [256, 256, 92])
        #expect(try rig.rxDescriptor(0).status == E1000Bits.rxDone)
        #expect(try rig.rxDescriptor(1).status == E1000Bits.rxDone)
        #expect(try rig.rxDescriptor(2).status & E1000Bits.rxEndOfPacket != 0)
        var received: [UInt8] = []
        for index in 0..<3 { received += try rig.memory.read(at: rig.rxBuffer(index), count: min(256, frame.count - received.count)) }
        #expect(received == frame)
        #expect(rig.read(E1000Register.rdh) == 3)
        // Buffer sizes from BSIZE/BSEX.
        #expect(E1000.receiveBufferSize(0) == 2048)
        #expect(E1000.receiveBufferSize(1 << 16) == 1024)
        #expect(E1000.receiveBufferSize(E1000Bits.rctlSizeExtension | 1 << 16) == 16384)
        #expect(E1000.receiveBufferSize(E1000Bits.rctlSizeExtension | 3 << 16) == 4096)
        // A frame needing more descriptors than are free is dropped whole, with RXO.
        rig.write(E1000Register.rdt, 4)
        _ = rig.read(E1000Register.icr)
        #expect(!rig.backend.deliver(frame))
        #expect(rig.read(E1000Register.rdh) == 3)
        #expect(rig.read(E1000Register.icr) & E1000Bits.rxo != 0)
    }

    @Test func receiveFilters() throws {
        let rig = try E1000Rig()
        try rig.setUpReceive(count: 64, head: 0, tail: 63, rctl: E1000Bits.rctlEnable)
        func delivered(_ destination: [UInt8]) -> Bool {
            let before = rig.nic.counters.framesReceived
            #expect(rig.backend.deliver(Frames.ethernet(to: destination, payload: Frames.pattern(50))))
            return rig.nic.counters.framesReceived == before + 1
        }
        let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        let other: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        let multicast: [UInt8] = [0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB]
        #expect(delivered(E1000Rig.mac))
        #expect(!delivered(other))
        #expect(!delivered(broadcast))                                                         // BAM clear
        #expect(!delivered(multicast))
        #expect(rig.nic.counters.receiveFiltered == 3)
        rig.write(E1000Register.rctl, E1000Bits.rctlEnable | E1000Bits.rctlBroadcastAccept)
        #expect(delivered(broadcast))
        // A second exact address, valid only with AV.
        rig.write(E1000Register.ra + 8, 0x3322_1102)
        rig.write(E1000Register.ra + 12, 0x5544)
        #expect(!delivered(other))
        rig.write(E1000Register.ra + 12, 0x5544 | E1000Bits.rahAddressValid)
        #expect(delivered(other))
        // Multicast hash, MO = 00: bits 47:36 of the address.
        let hash = (Int(multicast[4]) >> 4 | Int(multicast[5]) << 4) & 0xFFF
        rig.write(E1000Register.mta + 4 * (hash >> 5), 1 << UInt32(hash & 31))
        #expect(delivered(multicast))
        #expect(!delivered([0x01, 0x00, 0x5E, 0x00, 0x00, 0xFC]))
        // MO = 11: bits 43:32.
        let hash3 = (Int(multicast[4]) | Int(multicast[5]) << 8) & 0xFFF
        rig.write(E1000Register.rctl, E1000Bits.rctlEnable | 3 << 12)
        #expect(!delivered(multicast) || hash3 >> 5 == hash >> 5 && hash3 & 31 == hash & 31)
        rig.write(E1000Register.mta + 4 * (hash3 >> 5), 1 << UInt32(hash3 & 31))
        #expect(delivered(multicast))
        // Promiscuous modes.
        rig.write(E1000Register.rctl, E1000Bits.rctlEnable | E1000Bits.rctlMulticastPromiscuous)
        #expect(delivered([0x01, 0x80, 0xC2, 0, 0, 0x0E]))
        #expect(!delivered([0x02, 0x99, 0x99, 0x99, 0x99, 0x99]))
        rig.write(E1000Register.rctl, E1000Bits.rctlEnable | E1000Bits.rctlUnicastPromiscuous)
        #expect(delivered([0x02, 0x99, 0x99, 0x99, 0x99, 0x99]))
        #expect(!delivered([0x01, 0x80, 0xC2, 0, 0, 0x0E]))
    }

    @Test func receiveChecksumOffloadAndVLANStripping() throws {
        let rig = try E1000Rig()
        try rig.setUpReceive(count: 8, head: 0, tail: 7)
        rig.write(E1000Register.rxcsum, E1000Bits.rxcsumIPOffload | E1000Bits.rxcsumTCPUDPOffload)
        var good = Frames.tcp(payload: Frames.pattern(200), sequence: 5, flags: 0x10, id: 9, withLength: true)
        good.replaceSubrange(0..<12, with: E1000Rig.mac + Frames.peer)
        E1000Offload.insertChecksum(&good, start: 14, offset: 24, end: 33)
        E1000Offload.insertChecksum(&good, start: 34, offset: 50, end: 0)
        #expect(Frames.checksumsVerify(good) == (true, true))
        #expect(rig.backend.deliver(good))
        var descriptor = try rig.rxDescriptor(0)
        #expect(descriptor.status & (E1000Bits.rxIPChecksummed | E1000Bits.rxTCPChecksummed) == E1000Bits.rxIPChecksummed | E1000Bits.rxTCPChecksummed)
        #expect(descriptor.status & E1000Bits.rxIgnoreChecksum == 0)
        #expect(descriptor.errors == 0)
        var bad = good
        bad[60] ^= 0xFF
        #expect(rig.backend.deliver(bad))
        descriptor = try rig.rxDescriptor(1)
        #expect(descriptor.errors == E1000Bits.rxErrorTCP)
        // VLAN: with CTRL.VME the tag goes to "special" and VP is set.
        rig.write(E1000Register.ctrl, rig.read(E1000Register.ctrl) | E1000Bits.ctrlVLANEnable)
        let inner = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(80))
        let tagged = Array(inner[0..<12]) + [0x81, 0x00, 0x00, 0x2A] + Array(inner[12...])
        #expect(rig.backend.deliver(tagged))
        descriptor = try rig.rxDescriptor(2)
        #expect(descriptor.status & E1000Bits.rxVLANStripped != 0)
        #expect(descriptor.special == 0x2A)
        #expect(descriptor.length == inner.count + 4)
        #expect(try rig.memory.read(at: rig.rxBuffer(2), count: inner.count) == inner)
        // VLAN filter: VID 42 must be in VFTA.
        rig.write(E1000Register.rctl, rig.read(E1000Register.rctl) | E1000Bits.rctlVLANFilter)
        let received = rig.nic.counters.framesReceived
        #expect(rig.backend.deliver(tagged))
        #expect(rig.nic.counters.framesReceived == received)
        rig.write(E1000Register.vfta + 4, 1 << 10)                                            // 42 = 32 + 10
        #expect(rig.backend.deliver(tagged))
        #expect(rig.nic.counters.framesReceived == received + 1)
    }

    /// The order Linux's e1000 brings the NIC up and runs it: reset through the I/O window, mask everything,
    /// program the rings, unmask IMS_ENABLE_MASK, then the interrupt handler's ICR read per interrupt.
    @Test func linuxStyleBringUpWithInterrupts() throws {
        let rig = try E1000Rig()
        rig.write(E1000Register.imc, 0xFFFF_FFFF)
        rig.write(E1000Register.rctl, 0)
        rig.write(E1000Register.tctl, E1000Bits.tctlPadShortPackets)
        _ = rig.read(E1000Register.status)
        rig.bus.portWrite(rig.ioBase, size: 4, value: UInt32(E1000Register.ctrl))
        rig.bus.portWrite(rig.ioBase + 4, size: 4, value: rig.read(E1000Register.ctrl) | E1000Bits.ctrlReset)
        rig.write(E1000Register.imc, 0xFFFF_FFFF)
        _ = rig.read(E1000Register.icr)
        rig.write(E1000Register.itr, 195)                                                     // Linux's default: 50 µs
        rig.setUpTransmit(count: 8)
        try rig.setUpReceive(count: 8, head: 0, tail: 7, rctl: E1000Bits.rctlEnable | E1000Bits.rctlBroadcastAccept)
        rig.write(E1000Register.ims, E1000Bits.rxt0 | E1000Bits.txdw | E1000Bits.rxdmt0 | E1000Bits.rxseq | E1000Bits.lsc)
        rig.write(E1000Register.ics, E1000Bits.lsc)                                           // e1000_open kicks the watchdog
        #expect(rig.interrupts.level(rig.gsi))
        #expect(rig.read(E1000Register.icr) & E1000Bits.lsc != 0)                           // (with TXQE from the empty ring)
        #expect(!rig.interrupts.level(rig.gsi))
        // A frame in: the line rises (after the ITR window at most); the handler masks, reads ICR, unmasks.
        let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(300))
        #expect(rig.backend.deliver(frame))
        #expect(eventually { rig.interrupts.level(rig.gsi) })
        rig.write(E1000Register.imc, 0xFFFF_FFFF)
        #expect(!rig.interrupts.level(rig.gsi))
        #expect(rig.read(E1000Register.icr) & E1000Bits.rxt0 != 0)
        #expect(try rig.rxDescriptor(0).length == frame.count + 4)
        rig.write(E1000Register.ims, E1000Bits.rxt0 | E1000Bits.txdw | E1000Bits.rxdmt0 | E1000Bits.rxseq | E1000Bits.lsc)
        #expect(!rig.interrupts.level(rig.gsi))
        // A frame out with EOP | IFCS | RS | IDE, as txd_cmd has it.
        try rig.memory.write(frame, at: E1000Rig.buffers + 0x20_0000)
        try rig.legacyTX(0, buffer: E1000Rig.buffers + 0x20_0000, length: frame.count, command: 0x01 | 0x02 | 0x08 | 0x80)
        rig.write(E1000Register.tdt, 1)
        #expect(rig.backend.frames == [frame])
        #expect(eventually { rig.interrupts.level(rig.gsi) })
        #expect(rig.read(E1000Register.icr) & E1000Bits.txdw != 0)
        #expect(try rig.txStatus(0) & E1000Bits.txDescriptorDone != 0)
    }

    /// The back end's thread receiving (and recycling RX descriptors) while a vCPU transmits: no deadlock, nothing lost
    /// that was not counted.
    @Test func receiveAndTransmitConcurrently() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 64)
        try rig.setUpReceive(count: 64, head: 0, tail: 63)
        rig.write(E1000Register.ims, E1000Bits.rxt0 | E1000Bits.txdw)
        let incoming = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(500))
        let outgoing = Frames.ethernet(to: Frames.peer, from: E1000Rig.mac, payload: Frames.pattern(700))
        try rig.memory.write(outgoing, at: E1000Rig.buffers + 0x20_0000)
        let rounds = 1000
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            for _ in 0..<rounds {
                _ = rig.backend.deliver(incoming)
                rig.write(E1000Register.rdt, (rig.read(E1000Register.rdh) + 63) % 64)
                _ = rig.read(E1000Register.icr)
            }
        }
        for n in 0..<rounds {
            try rig.legacyTX(n % 64, buffer: E1000Rig.buffers + 0x20_0000, length: outgoing.count, command: Self.eopRS)
            rig.write(E1000Register.tdt, UInt32((n + 1) % 64))
        }
        group.wait()
        let counters = rig.nic.counters
        #expect(rig.backend.frames.count == rounds)
        #expect(counters.framesTransmitted == UInt64(rounds))
        #expect(counters.framesReceived + counters.receiveNoBuffers == UInt64(rounds))
        #expect(counters.framesReceived > 0)
    }
}
