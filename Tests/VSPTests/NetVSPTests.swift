// The NetVSP state machine driven by the scripted Linux 6.1 guest (NetVSPLinuxGuest.swift): negotiation, buffers,
// RNDIS bring-up, frames both ways, back-pressure.

import Testing
@testable import VMBus
@testable import VSP

@Suite struct NetVSPTests {
    @Test func linuxBringUpSequence() throws {
        let guest = try LinuxNetVSC()
        // netvsc_connect_vsp: 6.1 is tried first and accepted.
        let statuses = guest.connect()
        #expect(statuses == [0x60001: LinuxNet.statSuccess])
        #expect(guest.machine.version == .v61)
        #expect(guest.machine.ndisMTU == 1514)
        #expect(guest.machine.ndisVersion == 0x0006_001E)
        #expect(guest.inbound.isEmpty, "NDIS config and version have no answer")

        // netvsc_init_buf: 20 scattered receive pages, 8 send pages.
        let buffers = guest.initBuffers(recvPages: (0..<20).map { 0x100 + 2 * $0 }, sendPages: (0..<8).map { 0x200 + $0 })
        #expect(buffers.recv == LinuxNet.statSuccess && buffers.send == LinuxNet.statSuccess)
        #expect(guest.recvSectionSize == 1600, "44-byte RNDIS header + 1518-byte frame, rounded to 64")
        #expect(guest.recvSectionCount == 20 * 4096 / 1600)
        #expect(guest.sendSectionSize == 6144)
        #expect(guest.sendSectionCount == 5)

        // rndis_filter_device_add.
        let info = guest.deviceAdd()
        #expect(guest.maxPacketsPerMessage == 8)
        #expect(guest.packetAlignment == 8)
        #expect(info.indications == [LinuxNet.statusMediaConnect])
        #expect(info.mtu == 1500)
        #expect(info.mac == LinuxNetVSC.mac)
        #expect(info.friendlyName == [], "no name: Linux keeps no alias")
        let offload = try #require(info.offload)
        #expect(offload.count == LinuxNet.ndisOffloadSize)
        #expect(offload[0] == 0xA7 && offload[1] == 3 && Int(offload.netU16(2)) == LinuxNet.ndisOffloadSize)
        #expect(offload[4...].allSatisfy { $0 == 0 }, "no offloads")
        #expect(info.offloadParametersStatus == LinuxNet.statusSuccess)
        #expect(info.linkDown == false)
        #expect(info.linkSpeed == 100_000_000)
        #expect(info.receiveQueues == 0, "fewer than 2 queues: one channel, no subchannels")
        #expect(!guest.machine.receiveEnabled, "no packet filter yet")

        // rndis_filter_open.
        #expect(guest.openDevice() == LinuxNet.statusSuccess)
        #expect(guest.machine.packetFilter == 0x0D)
        #expect(guest.machine.receiveEnabled)
        #expect(guest.inbound.isEmpty)
        #expect(guest.machine.freeReceiveSections == guest.recvSectionCount, "every answer's section came back")
        #expect(guest.machine.counters.protocolErrors == 0 && guest.machine.counters.txDroppedMalformed == 0)
    }

    @Test(arguments: [(NVSPVersion.v5, UInt32(0x50000), 3, 156), (.v4, 0x40000, 2, 144), (.v2, 0x30002, 1, 112), (.v1, 0x2, 1, 112)])
    func olderHostVersionsAreRefusedUntilLinuxFallsBack(maxVersion: NVSPVersion, expected: UInt32, revision: Int, size: Int) throws {
        var configuration = NetVSPConfiguration(mac: LinuxNetVSC.mac)
        configuration.maxVersion = maxVersion
        let guest = try LinuxNetVSC(configuration: configuration)
        let statuses = guest.connect()
        #expect(guest.nvspVersion == expected)
        for (version, status) in statuses where version > expected {
            #expect(status == 3, "NVSP_STAT_PROTOCOL_TOO_NEW for 0x\(String(version, radix: 16))")
        }
        #expect(statuses[expected] == LinuxNet.statSuccess)
        #expect(guest.machine.ndisMTU == (expected >= 0x30002 ? 1514 : nil), "NDIS config from NVSP 2")
        guest.initBuffers(recvPages: (0..<8).map { 0x100 + $0 }, sendPages: (0..<4).map { 0x200 + $0 })
        let info = guest.deviceAdd()
        #expect(info.offload.map { [Int($0[1]), $0.count] } == [revision, size])
        #expect(info.offloadParametersStatus == LinuxNet.statusSuccess)
        #expect(info.linkSpeed == (expected >= 0x50000 ? 100_000_000 : nil), "link speed queried from NVSP 5")
        #expect(guest.machine.counters.protocolErrors == 0)
    }

    @Test func framesFromSendBufferSectionsBatched() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let frames = [LinuxNetVSC.frame(length: 60, seed: 1), LinuxNetVSC.frame(length: 1514, seed: 2),
                      LinuxNetVSC.frame(length: 99, seed: 3)]
        // Two of them batched into section 0 (padded to 8), one alone in section 4.
        #expect(guest.transmitInSection(Array(frames[0...1]), section: 0) == LinuxNet.statSuccess)
        #expect(guest.transmitInSection([frames[2]], section: 4) == LinuxNet.statSuccess)
        #expect(guest.transmitted == frames)
        #expect(guest.machine.counters.txFrames == 3)
        #expect(guest.machine.counters.txBytes == UInt64(60 + 1514 + 99))
    }

    @Test func framesFromPageBuffersAcrossPages() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let frame = LinuxNetVSC.frame(length: 1200, seed: 9)
        #expect(guest.transmitInPages(frame) == LinuxNet.statSuccess)
        #expect(guest.transmitted == [frame])
        // A frame inside one page goes to the back end in place.
        let small = LinuxNetVSC.frame(length: 300, seed: 4)
        #expect(guest.transmitInPages(small, frameAddress: 0x390 << 12 + 8) == LinuxNet.statSuccess)
        #expect(guest.transmitted.last == small)
    }

    @Test func headerInSectionFrameInPageBuffers() throws {
        // netvsc_send's cp_partial: a batched packet in the section, then the next packet's RNDIS header and
        // per-packet info copied after it, with its frame still in page buffers.
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let first = LinuxNetVSC.frame(length: 80, seed: 5), second = LinuxNetVSC.frame(length: 900, seed: 6)
        let batched = LinuxNetVSC.rndisPacket(frame: first, pad: guest.packetAlignment)
        let message = LinuxNetVSC.rndisPacket(frame: second)
        let header = Array(message[..<(message.count - second.count)])
        guest.writeBuffer(LinuxNetVSC.sendGPADL, 2 * guest.sendSectionSize, batched + header)
        let frameAddress = LinuxNetVSC.dataPages << 12 + 4000
        try guest.memory.write(second, at: frameAddress)
        let nvsp = LinuxNetVSC.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(2) + net32(UInt32(batched.count + header.count)))
        let id = guest.pageBuffer(nvsp, ranges: LinuxNetVSC.pageRanges(at: frameAddress, count: second.count))
        #expect(guest.takeCompletion(id)?.netU32(4) == LinuxNet.statSuccess)
        #expect(guest.transmitted == [first, second])
    }

    @Test func vlanTagFromPerPacketInfoIsInserted() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let frame = LinuxNetVSC.frame(length: 64, seed: 3)
        // ndis_pkt_8021q_info {pri:3, cfi:1, vlanid:12}: priority 5, VLAN 100.
        #expect(guest.transmitInPages(frame, vlan: 5 | 100 << 4) == LinuxNet.statSuccess)
        let sent = try #require(guest.transmitted.first)
        #expect(sent.count == 68)
        #expect(Array(sent[0..<12]) == Array(frame[0..<12]))
        #expect(Array(sent[12..<16]) == [0x81, 0x00, 0xA0, 0x64], "TPID 0x8100, TCI = 5 << 13 | 100")
        #expect(Array(sent[16...]) == Array(frame[12...]))
    }

    @Test func receivedFramesLandInSectionsAndSectionsAreReused() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let total = guest.recvSectionCount
        for round in 0..<3 {
            // The guest completes nothing until every section is in use.
            var transfers: [NetTransfer] = []
            for index in 0..<total {
                let frame = LinuxNetVSC.frame(length: 60 + index * 29, seed: UInt8(round))
                #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
                guest.flush()
                let transfer = try #require(guest.takeTransfer())
                #expect(transfer.channelType == 0 && transfer.messages.count == 1)
                let message = transfer.messages[0]
                // rndis_packet {data_offset 36, data_len}: the frame right after the 44-byte header.
                #expect(message.netU32(0) == LinuxNet.rndisPacket && Int(message.netU32(4)) == 44 + frame.count)
                #expect(message.netU32(8) == 36 && Int(message.netU32(12)) == frame.count)
                #expect(message.netU32(28) == 0 && message.netU32(32) == 0, "no per-packet info")
                #expect(Array(message[44...]) == frame)
                #expect(transfer.ranges[0].offset % UInt32(guest.recvSectionSize) == 0)
                transfers.append(transfer)
            }
            #expect(Set(transfers.map(\.ranges[0].offset)).count == total, "every section used once")
            #expect(guest.machine.freeReceiveSections == 0)
            #expect(LinuxNetVSC.frame(length: 60).withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.noSection))
            // Completions give the sections back, in any order.
            for transfer in transfers.reversed() { guest.completeTransfer(transfer.transactionID) }
            #expect(guest.machine.freeReceiveSections == total)
        }
        #expect(guest.machine.counters.rxFrames == UInt64(3 * total))
        #expect(guest.machine.counters.rxDroppedNoSection == 3)
        #expect(guest.machine.counters.unknownCompletions == 0)
    }

    @Test func fullRingQueuesFramesAndSendsThemInOneBatch() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        guest.ringFull = true
        let frames = (0..<5).map { LinuxNetVSC.frame(length: 100, seed: UInt8($0)) }
        for frame in frames {
            #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
            guest.flush()
        }
        #expect(guest.inbound.isEmpty && guest.machine.hasPendingOutput)
        guest.ringFull = false
        guest.flush()
        let transfer = try #require(guest.takeTransfer())
        #expect(transfer.ranges.count == 5, "one transfer-page packet with a range per frame")
        #expect(transfer.messages.map { Array($0[44...]) } == frames)
        #expect(Set(transfer.ranges.map(\.offset)).count == 5)
        guest.completeTransfer(transfer.transactionID)
        #expect(guest.machine.freeReceiveSections == guest.recvSectionCount)
    }

    @Test func noFreeSectionOrLongQueueDropsAndCounts() throws {
        var configuration = NetVSPConfiguration(mac: LinuxNetVSC.mac)
        configuration.maxQueuedRanges = 3
        let guest = try LinuxNetVSC(configuration: configuration)
        guest.bringUp()
        let frame = LinuxNetVSC.frame(length: 100)
        // Ring full: three frames wait, the fourth is refused.
        guest.ringFull = true
        for _ in 0..<3 { #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted) }
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.ringFull))
        guest.ringFull = false
        guest.flush()
        // The guest holds on to its packets: once every section is taken, frames are dropped.
        var accepted = 3
        while frame.withUnsafeBytes({ guest.machine.receiveFrame($0) }) == .accepted {
            accepted += 1
            guest.flush()
        }
        #expect(accepted == guest.recvSectionCount)
        #expect(guest.machine.counters.rxDroppedNoSection == 1 && guest.machine.counters.rxDroppedRingFull == 1)
        // Completing one packet frees its sections.
        let transfer = try #require(guest.takeTransfer())
        guest.completeTransfer(transfer.transactionID)
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
    }

    @Test func packetFilterDecidesWhatReachesTheGuest() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        func offer(_ destination: [UInt8]) -> NetVSPFrameDisposition {
            let result = LinuxNetVSC.frame(to: destination, length: 60).withUnsafeBytes { guest.machine.receiveFrame($0) }
            guest.flush()
            while let transfer = guest.takeTransfer() { guest.completeTransfer(transfer.transactionID) }
            return result
        }
        let other: [UInt8] = [0x02, 9, 9, 9, 9, 9], broadcast = [UInt8](repeating: 0xFF, count: 6)
        let multicast: [UInt8] = [0x01, 0x00, 0x5E, 0, 0, 1]
        #expect(offer(LinuxNetVSC.mac) == .accepted)
        #expect(offer(broadcast) == .accepted)
        #expect(offer(multicast) == .accepted)
        #expect(offer(other) == .dropped(.filtered))
        #expect(guest.set(LinuxNet.oidCurrentPacketFilter, net32(LinuxNet.filterPromiscuous)) == LinuxNet.statusSuccess)
        #expect(offer(other) == .accepted)
        #expect(guest.set(LinuxNet.oidCurrentPacketFilter, net32(LinuxNet.filterDirected)) == LinuxNet.statusSuccess)
        #expect(offer(broadcast) == .dropped(.filtered))
        // rndis_filter_close_device: filter 0, nothing gets through.
        #expect(guest.set(LinuxNet.oidCurrentPacketFilter, net32(0)) == LinuxNet.statusSuccess)
        #expect(!guest.machine.receiveEnabled)
        #expect(offer(LinuxNetVSC.mac) == .dropped(.filtered))
        #expect(guest.machine.counters.rxDroppedFiltered == 3)
    }

    @Test func macAddressCanBeChangedThroughConfigParameter() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // rndis_filter_set_device_mac: rndis_config_parameter_info {name_offset 20, name_length 28, type 2 (string),
        // value_offset 48, value_length 24}, "NetworkAddress" and "%pm" in UTF-16.
        let name = Array("NetworkAddress".utf16).flatMap(net16), value = Array("02aabbccddee".utf16).flatMap(net16)
        let parameter = net32(20) + net32(28) + net32(2) + net32(48) + net32(24) + name + value
        #expect(guest.set(LinuxNet.oidConfigParameter, parameter) == LinuxNet.statusSuccess)
        #expect(guest.query(LinuxNet.oidCurrentAddress)?.data == [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE])
        #expect(guest.query(LinuxNet.oidPermanentAddress)?.data == LinuxNetVSC.mac)
        let frame = LinuxNetVSC.frame(to: [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE], length: 60)
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .accepted)
    }

    @Test func keepaliveResetAndHalt() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // rndis_keepalive_request {req_id} → rndis_keepalive_complete {req_id, status}
        let keepalive = guest.request(net32(LinuxNet.rndisKeepalive) + net32(12) + net32(77))
        #expect(keepalive.map { [$0.netU32(0), $0.netU32(4), $0.netU32(8), $0.netU32(12)] } == [LinuxNet.rndisKeepaliveC, 16, 77, 0])
        // rndis_reset_request {reserved} → rndis_reset_complete {status, addressing_reset}
        let reset = guest.request(net32(LinuxNet.rndisReset) + net32(12) + net32(0))
        #expect(reset.map { [$0.netU32(0), $0.netU32(4), $0.netU32(8), $0.netU32(12)] } == [LinuxNet.rndisResetC, 16, 0, 0])
        // rndis_filter_halt_device: no answer; nothing is received afterwards.
        _ = guest.request(net32(LinuxNet.rndisHalt) + net32(12) + net32(guest.newRequestID()), expectAnswer: false)
        #expect(guest.inbound.isEmpty)
        #expect(guest.machine.rndisState == .halted && !guest.machine.receiveEnabled)
        let frame = LinuxNetVSC.frame(length: 60)
        #expect(frame.withUnsafeBytes { guest.machine.receiveFrame($0) } == .dropped(.notReady))
        // netvsc_revoke_recv_buf / netvsc_revoke_send_buf: {id u16}, no completion.
        guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgRevokeRecvBuf, net16(LinuxNet.receiveBufferID)), completion: false)
        guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgRevokeSendBuf, net16(LinuxNet.sendBufferID)), completion: false)
        #expect(guest.machine.freeReceiveSections == 0 && guest.machine.sendSectionCount == 0)
        #expect(guest.machine.counters.protocolErrors == 0)
    }

    @Test func linkChangesAreIndicated() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        guest.machine.setLink(up: false)
        guest.flush()
        let down = try #require(guest.takeTransfer())
        // rndis_indicate_status {status, status_buflen, status_buf_offset}
        #expect(down.channelType == 1 && down.messages[0].netU32(0) == LinuxNet.rndisIndicate)
        #expect(down.messages[0].netU32(4) == 20 && down.messages[0].netU32(8) == LinuxNet.statusMediaDisconnect)
        guest.completeTransfer(down.transactionID)
        #expect(guest.query(LinuxNet.oidMediaConnectStatus)?.data == net32(1))
        guest.machine.setLink(up: true)
        guest.flush()
        #expect(guest.takeTransfer()?.messages[0].netU32(8) == LinuxNet.statusMediaConnect)
    }

    @Test func switchDataPathAndSubchannelRequestsAreAnswered() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        // netvsc_switch_datapath waits for a completion with no payload.
        let id = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSwitchDataPath, net32(0)))
        #expect(guest.takeCompletion(id) == [])
        // rndis_set_subchannel: nvsp_5_subchannel_request {op 1, num_subchannels}; no subchannels.
        let request = guest.inband(LinuxNetVSC.nvsp(LinuxNet.msgSubchannel, net32(1) + net32(3)))
        let reply = try #require(guest.takeCompletion(request))
        #expect(reply.count == 40 && reply.netU32(0) == LinuxNet.msgSubchannel && reply.netU32(4) != LinuxNet.statSuccess)
        #expect(reply.netU32(8) == 0)
    }

    @Test func sessionsStartOverWhenTheChannelReopens() throws {
        let guest = try LinuxNetVSC()
        guest.bringUp()
        let counters = guest.machine.counters
        guest.machine.close()
        #expect(guest.machine.version == nil && !guest.machine.receiveEnabled)
        guest.machine.open(memory: guest.defaultMemory)
        guest.inbound = []
        guest.bringUp()
        #expect(guest.machine.receiveEnabled)
        #expect(guest.machine.counters.controlRequests == 2 * counters.controlRequests, "counters carry over")
    }
}
