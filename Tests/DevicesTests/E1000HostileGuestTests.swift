import Testing
@testable import Devices
@testable import Partition

/// One test per bad input: the NIC neither crashes nor touches memory outside guest RAM; it drops and counts.
@Suite struct E1000HostileGuestTests {
    static let eopRS = E1000Bits.txEOP | E1000Bits.txReportStatus
    static let outside: UInt64 = 0x4000_0000          // beyond the 16 MiB of RAM
    static let frame = Frames.ethernet(to: Frames.peer, from: E1000Rig.mac, payload: Frames.pattern(100))

    @Test func transmitBufferOutsideGuestMemory() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        try rig.legacyTX(0, buffer: Self.outside, length: 100, command: Self.eopRS)
        try rig.legacyTX(1, buffer: UInt64.max - 10, length: 100, command: Self.eopRS)          // wraps the address space
        try rig.memory.write(Self.frame, at: E1000Rig.buffers)
        try rig.legacyTX(2, buffer: E1000Rig.buffers, length: Self.frame.count, command: Self.eopRS)
        rig.write(E1000Register.tdt, 3)
        #expect(rig.backend.frames == [Self.frame])                                            // the good one still goes
        #expect(rig.nic.counters.transmitDMAErrors == 2)
        #expect(try rig.txStatus(0) & E1000Bits.txDescriptorDone != 0)                          // bad ones complete
        #expect(rig.read(E1000Register.tdh) == 3)
    }

    @Test func transmitRingOutsideGuestMemory() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        rig.write(E1000Register.tdbal, 0xFFFF_F000)
        rig.write(E1000Register.tdbah, 0xFFFF_FFFF)
        rig.write(E1000Register.tdt, 2)
        #expect(rig.backend.frames.isEmpty)
        #expect(rig.nic.counters.transmitDescriptorErrors == 1)
        #expect(rig.read(E1000Register.tdh) == 0)
        // A ring that runs off the end of RAM part way: the descriptors inside work, the walk stops at the edge.
        rig.write(E1000Register.tdbah, 0)
        rig.write(E1000Register.tdbal, UInt32((16 << 20) - 32))
        rig.write(E1000Register.tdh, 0)
        rig.write(E1000Register.tdt, 0)
        try rig.memory.write(Self.frame, at: E1000Rig.buffers)
        try rig.legacyTX(0, buffer: E1000Rig.buffers, length: Self.frame.count, command: Self.eopRS, ring: (16 << 20) - 32)
        try rig.legacyTX(1, buffer: E1000Rig.buffers, length: Self.frame.count, command: Self.eopRS, ring: (16 << 20) - 32)
        rig.write(E1000Register.tdt, 4)
        #expect(rig.backend.frames.count == 2)
        #expect(rig.read(E1000Register.tdh) == 2)
        #expect(rig.nic.counters.transmitDescriptorErrors == 2)
    }

    @Test func transmitZeroAndHugeLengths() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 16)
        try rig.memory.write(Self.frame, at: E1000Rig.buffers)
        // Zero-length descriptors inside a packet are skipped; an empty packet (or a runt) is dropped.
        try rig.legacyTX(0, buffer: E1000Rig.buffers, length: 0, command: 0)
        try rig.legacyTX(1, buffer: E1000Rig.buffers, length: Self.frame.count, command: 0)
        try rig.legacyTX(2, buffer: 0, length: 0, command: Self.eopRS)
        try rig.legacyTX(3, buffer: E1000Rig.buffers, length: 0, command: Self.eopRS)
        try rig.legacyTX(4, buffer: E1000Rig.buffers, length: 6, command: Self.eopRS)
        rig.write(E1000Register.tdt, 5)
        #expect(rig.backend.frames == [Self.frame])
        #expect(rig.nic.counters.transmitMalformed == 2)
        // Data descriptors carry 20-bit lengths: 1 MiB - 1 exceeds what the NIC assembles (64 KiB), as do 9 descriptors of 8 KiB.
        try rig.dataTX(5, buffer: 0, length: 0xF_FFFF, command: Self.eopRS, options: 0)
        for index in 6..<14 { try rig.dataTX(index, buffer: 0, length: 0x2000, command: 0, options: 0) }
        try rig.dataTX(14, buffer: 0, length: 0x2000, command: Self.eopRS, options: 0)
        rig.write(E1000Register.tdt, 15)
        #expect(rig.backend.frames.count == 1)
        #expect(rig.nic.counters.transmitMalformed == 4)
        #expect(rig.read(E1000Register.tdh) == 15)
    }

    @Test func ringLengthsNotAMultipleOf128() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        rig.write(E1000Register.tdlen, 200)
        #expect(rig.read(E1000Register.tdlen) == 128)
        rig.write(E1000Register.rdlen, 0xFFFF_FFFF)
        #expect(rig.read(E1000Register.rdlen) == 0xF_FF80)
        rig.write(E1000Register.tdlen, 100)
        #expect(rig.read(E1000Register.tdlen) == 0)
        rig.write(E1000Register.tdt, 1)
        #expect(rig.nic.counters.transmitRingErrors == 1)
        try rig.setUpReceive()
        rig.write(E1000Register.rdlen, 127)
        #expect(!rig.backend.deliver(Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(64))))
        #expect(rig.nic.counters.receiveRingErrors == 1)
    }

    @Test func headOrTailOutOfRange() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 8)
        rig.write(E1000Register.tdt, 200)
        #expect(rig.read(E1000Register.tdh) == 0)
        rig.write(E1000Register.tdh, 0xFFFF)
        rig.write(E1000Register.tdt, 3)
        #expect(rig.read(E1000Register.tdh) == 0xFFFF)
        #expect(rig.nic.counters.transmitRingErrors == 2)
        #expect(rig.backend.frames.isEmpty)
        rig.write(E1000Register.tdt, 0x1_0005)                                                  // 16 bits kept
        #expect(rig.read(E1000Register.tdt) == 5)

        try rig.setUpReceive(count: 8, head: 0, tail: 7)
        let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(64))
        rig.write(E1000Register.rdt, 9)
        #expect(!rig.backend.deliver(frame))
        rig.write(E1000Register.rdt, 7)
        rig.write(E1000Register.rdh, 8)
        #expect(!rig.backend.deliver(frame))
        #expect(rig.nic.counters.receiveRingErrors == 2)
        rig.write(E1000Register.rdh, 0)
        #expect(rig.backend.deliver(frame))
    }

    @Test func dmaWhileBusMasteringIsOff() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        try rig.setUpReceive()
        try rig.memory.write(Self.frame, at: E1000Rig.buffers + 0x20_0000)
        try rig.legacyTX(0, buffer: E1000Rig.buffers + 0x20_0000, length: Self.frame.count, command: Self.eopRS)
        rig.setCommand(PCIConfigSpace.commandMemorySpace)
        let before = try rig.memory.read(at: E1000Rig.txRing, count: 16)
        rig.write(E1000Register.tdt, 1)
        #expect(rig.backend.frames.isEmpty)
        #expect(rig.nic.counters.transmitBlocked == 1)
        #expect(try rig.memory.read(at: E1000Rig.txRing, count: 16) == before)                   // no write-back
        #expect(rig.read(E1000Register.tdh) == 0)
        let incoming = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(64))
        #expect(!rig.backend.deliver(incoming))
        #expect(rig.nic.counters.receiveBlocked == 1)
        #expect(try rig.rxDescriptor(0).status == 0)
        // Bus mastering on: the next kick sends, the next frame lands.
        rig.setCommand(PCIConfigSpace.commandMemorySpace | PCIConfigSpace.commandBusMaster)
        rig.write(E1000Register.tdt, 1)
        #expect(rig.backend.frames == [Self.frame])
        #expect(rig.backend.deliver(incoming))
        #expect(try rig.rxDescriptor(0).status & E1000Bits.rxDone != 0)
    }

    @Test func receiveWithoutBuffersOrWhileDisabled() throws {
        let rig = try E1000Rig()
        let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(64))
        #expect(!rig.backend.deliver(frame))                                                    // RCTL.EN clear
        #expect(rig.nic.counters.receiveDisabled == 1)
        try rig.setUpReceive(count: 8, head: 3, tail: 3)                                        // RDH == RDT: no buffers
        #expect(!rig.backend.deliver(frame))
        #expect(rig.nic.counters.receiveNoBuffers == 1)
        #expect(rig.read(E1000Register.mpc) == 1)
        rig.nic.setLink(up: false)
        rig.write(E1000Register.rdt, 5)
        #expect(!rig.backend.deliver(frame))
        #expect(rig.nic.counters.receiveDisabled == 2)
        rig.nic.setLink(up: true)
        #expect(rig.backend.deliver(frame))
        // After stop the back end no longer reaches the NIC.
        rig.nic.stop()
        #expect(!rig.backend.deliver(frame))
    }

    @Test func receiveRingAndBuffersOutsideGuestMemory() throws {
        let rig = try E1000Rig()
        try rig.setUpReceive()
        let frame = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(64))
        // A buffer outside RAM: the descriptor completes with RXE, nothing is written anywhere.
        try rig.memory.store(Self.outside, at: E1000Rig.rxRing)
        #expect(rig.backend.deliver(frame))
        #expect(try rig.rxDescriptor(0).errors & E1000Bits.rxErrorData != 0)
        #expect(try rig.rxDescriptor(0).status & E1000Bits.rxDone != 0)
        #expect(rig.nic.counters.receiveDMAErrors == 1)
        // A buffer that starts in RAM and runs past its end.
        try rig.memory.store(UInt64((16 << 20) - 10), at: E1000Rig.rxRing + 16)
        #expect(rig.backend.deliver(frame))
        #expect(rig.nic.counters.receiveDMAErrors == 2)
        // The ring itself outside RAM: nothing changes but the counter.
        rig.write(E1000Register.rdbal, 0xFFFF_FF00)
        rig.write(E1000Register.rdbah, 0xFFFF_FFFF)
        #expect(!rig.backend.deliver(frame))
        #expect(rig.nic.counters.receiveRingErrors == 1)
        #expect(rig.read(E1000Register.rdh) == 2)
    }

    @Test func receiveRuntsAndOversizedFrames() throws {
        let rig = try E1000Rig()
        try rig.setUpReceive()
        #expect(rig.backend.deliver([1, 2, 3]))
        #expect(rig.backend.deliver([]))
        let jumbo = Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(3000))
        #expect(rig.backend.deliver(jumbo))
        #expect(rig.nic.counters.receiveMalformed == 3)
        #expect(rig.read(E1000Register.roc) == 1)
        #expect(rig.read(E1000Register.ruc) == 2)
        #expect(rig.read(E1000Register.rdh) == 0)
        // With LPE the jumbo frame spans two 2 KiB buffers; past 16 KiB it is dropped all the same.
        rig.write(E1000Register.rctl, rig.read(E1000Register.rctl) | E1000Bits.rctlLongPackets)
        #expect(rig.backend.deliver(jumbo))
        #expect(rig.read(E1000Register.rdh) == 2)
        #expect(rig.backend.deliver(Frames.ethernet(to: E1000Rig.mac, payload: Frames.pattern(20000))))
        #expect(rig.read(E1000Register.rdh) == 2)
    }

    @Test func tsoWithUnusableContexts() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit(count: 16)
        let packet = Frames.tcp(payload: Frames.pattern(3000), sequence: 1, flags: 0x10, id: 1, withLength: false)
        try rig.memory.write(packet, at: E1000Rig.buffers)
        let tso = E1000Bits.tucmdTCP | E1000Bits.tucmdIPv4 | E1000Bits.txTSE
        let options = E1000Bits.poptsIPChecksum | E1000Bits.poptsL4Checksum
        // TSO data before any TSO context.
        try rig.dataTX(0, buffer: E1000Rig.buffers, length: packet.count, command: E1000Bits.txTSE | Self.eopRS, options: options)
        // MSS 0.
        try rig.contextTX(1, ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, payloadLength: 3000, tucmd: tso, headerLength: 54, mss: 0)
        try rig.dataTX(2, buffer: E1000Rig.buffers, length: packet.count, command: E1000Bits.txTSE | Self.eopRS, options: options)
        // Header longer than the packet.
        try rig.contextTX(3, ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, payloadLength: 3000, tucmd: tso, headerLength: 255, mss: 1000)
        try rig.dataTX(4, buffer: E1000Rig.buffers, length: 100, command: E1000Bits.txTSE | Self.eopRS, options: options)
        // MSS 1 over 3000 bytes: more segments than the NIC makes from one packet.
        try rig.contextTX(5, ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, payloadLength: 3000, tucmd: tso, headerLength: 54, mss: 1)
        try rig.dataTX(6, buffer: E1000Rig.buffers, length: packet.count, command: E1000Bits.txTSE | Self.eopRS, options: options)
        // Offsets pointing past the header and the packet: segments go out unpatched, nothing is written out of bounds.
        try rig.contextTX(7, ipcss: 200, ipcso: 250, ipcse: 0xFFFF, tucss: 240, tucso: 255, tucse: 0xFFFF, payloadLength: 3000, tucmd: tso, headerLength: 54, mss: 1500)
        try rig.dataTX(8, buffer: E1000Rig.buffers, length: packet.count, command: E1000Bits.txTSE | Self.eopRS, options: options)
        rig.write(E1000Register.tdt, 9)
        #expect(rig.read(E1000Register.tsctfc) == 4)
        #expect(rig.nic.counters.transmitMalformed == 4)
        #expect(rig.backend.frames.count == 2)
        #expect(rig.backend.frames.allSatisfy { $0.count == 54 + 1500 })
        #expect(rig.read(E1000Register.tdh) == 9)
    }

    @Test func contextOffsetsOutsideTheFrame() throws {
        let rig = try E1000Rig()
        rig.setUpTransmit()
        try rig.memory.write(Self.frame, at: E1000Rig.buffers)
        try rig.contextTX(0, ipcss: 255, ipcso: 255, ipcse: 0, tucss: 10, tucso: 254, tucse: 5, payloadLength: 0, tucmd: 0, headerLength: 0, mss: 0)
        try rig.dataTX(1, buffer: E1000Rig.buffers, length: Self.frame.count, command: Self.eopRS,
                       options: E1000Bits.poptsIPChecksum | E1000Bits.poptsL4Checksum)
        rig.write(E1000Register.tdt, 2)
        #expect(rig.backend.frames == [Self.frame])
    }
}
