import Synchronization

extension E1000 {
    /// A frame from the host network (no FCS), on the back end's thread. Returns false when the guest had no room
    /// for it (receive off, link down, bus mastering off, no descriptors, a broken ring): the back end counts
    /// those drops too. Frames the filters reject, runts and oversized frames are consumed (true) and counted here.
    public func receive(_ frame: UnsafeRawBufferPointer) -> Bool {
        state.withLock { receive(frame, &$0) }
    }

    func receive(_ frame: UnsafeRawBufferPointer, _ state: inout E1000State) -> Bool {
        let rctl = state.regs[E1000Register.rctl >> 2]
        guard state.linkUp, rctl & E1000Bits.rctlEnable != 0 else {
            note(\.receiveDisabled, &state, "RX frame while receive is off or the link is down: dropped")
            return false
        }
        guard config.busMasterEnabled else {
            note(\.receiveBlocked, &state, "RX frame while bus mastering is off: dropped")
            return false
        }
        guard frame.count >= 14 else {
            E1000.count(E1000Register.ruc, &state)
            note(\.receiveMalformed, &state, "RX runt of \(frame.count) bytes: dropped")
            return true
        }
        var data = [UInt8](frame)
        let vet = UInt16(truncatingIfNeeded: state.regs[E1000Register.vet >> 2])
        let tagged = data.bigEndian16(at: 12) == vet && data.count >= 18
        let limit = rctl & E1000Bits.rctlLongPackets != 0 || rctl & E1000Bits.rctlStoreBadPackets != 0
            ? E1000.maximumReceiveFrame - 4 : (tagged ? 1518 : 1514)
        guard data.count <= limit else {
            E1000.count(E1000Register.roc, &state)
            note(\.receiveMalformed, &state, "RX frame of \(data.count) bytes over the \(limit)-byte limit: dropped")
            return true
        }
        guard accepts(data, tagged: tagged, state) else {
            state.counters.receiveFiltered += 1
            return true
        }
        if data.count < 60 { data += [UInt8](repeating: 0, count: 60 - data.count) }
        let wireLength = data.count + 4

        var special: UInt16 = 0
        var status: UInt8 = 0
        if tagged && state.regs[E1000Register.ctrl >> 2] & E1000Bits.ctrlVLANEnable != 0 {
            special = data.bigEndian16(at: 14)
            data.removeSubrange(12..<16)
            status |= E1000Bits.rxVLANStripped
        }
        let checksum = E1000Offload.receiveChecksum(data, rxcsum: state.regs[E1000Register.rxcsum >> 2])

        // Room between RDH and RDT, at the buffer size RCTL sets.
        let count = Int(state.regs[E1000Register.rdlen >> 2]) / 16
        var head = Int(state.regs[E1000Register.rdh >> 2])
        let tail = Int(state.regs[E1000Register.rdt >> 2])
        guard count > 0, head < count, tail < count else {
            note(\.receiveRingErrors, &state, "RX ring of \(count) descriptors with RDH \(head), RDT \(tail): frame dropped")
            return false
        }
        let bufferSize = E1000.receiveBufferSize(rctl)
        let total = data.count + (rctl & E1000Bits.rctlStripCRC != 0 ? 0 : 4)   // the FCS is counted, not written
        let needed = (total + bufferSize - 1) / bufferSize
        let available = (tail - head + count) % count
        guard needed <= available else {
            E1000.count(E1000Register.rnbc, &state)
            E1000.count(E1000Register.mpc, &state)
            raise(E1000Bits.rxo, &state)
            note(\.receiveNoBuffers, &state, "RX frame needs \(needed) descriptors, \(available) free: dropped")
            return false
        }
        // Fetch every descriptor first, so a ring outside RAM changes nothing.
        let base = UInt64(state.regs[E1000Register.rdbah >> 2]) << 32 | UInt64(state.regs[E1000Register.rdbal >> 2] & ~0xF)
        var descriptors: [(address: UInt64, buffer: UInt64)] = []
        for i in 0..<needed {
            let address = base &+ UInt64((head + i) % count) &* 16
            guard let buffer = try? memory.load(UInt64.self, at: address), (try? memory.read(at: address, count: 16)) != nil else {
                note(\.receiveRingErrors, &state, "RX descriptor at 0x\(String(address, radix: 16)) is outside guest RAM: frame dropped")
                return false
            }
            descriptors.append((address, buffer))
        }

        var offset = 0
        for (i, descriptor) in descriptors.enumerated() {
            let chunk = min(bufferSize, total - offset)
            let bytes = max(0, min(chunk, data.count - offset))
            var errors: UInt8 = 0
            if descriptor.buffer != 0 && bytes > 0 {
                do { try memory.write(data[offset..<offset + bytes], at: descriptor.buffer) } catch {
                    errors |= E1000Bits.rxErrorData
                    note(\.receiveDMAErrors, &state, "RX buffer at 0x\(String(descriptor.buffer, radix: 16)) is outside guest RAM")
                }
            }
            let last = i == descriptors.count - 1
            var descriptorStatus = E1000Bits.rxDone | status
            if last {
                descriptorStatus |= E1000Bits.rxEndOfPacket | checksum.status
                errors |= checksum.errors
            }
            // Length, checksum, errors and VLAN first; the status byte with DD last, after a fence.
            try? memory.store(UInt16(chunk), at: descriptor.address + 8)
            try? memory.store(last ? checksum.checksum : 0, at: descriptor.address + 10)
            try? memory.store(errors, at: descriptor.address + 13)
            try? memory.store(special, at: descriptor.address + 14)
            atomicMemoryFence(ordering: .releasing)
            try? memory.store(descriptorStatus, at: descriptor.address + 12)
            offset += chunk
        }
        head = (head + needed) % count
        state.regs[E1000Register.rdh >> 2] = UInt32(head)

        countReceived(data, length: wireLength, &state)
        var causes = E1000Bits.rxt0
        let free = (tail - head + count) % count
        let threshold = Int(state.regs[E1000Register.rdlen >> 2]) >> (Int((rctl >> 8) & 3) + 1)
        if free * 16 <= threshold { causes |= E1000Bits.rxdmt0 }
        raise(causes, &state)
        return true
    }

    /// RCTL.BSIZE with BSEX: 2048, 1024, 512, 256 bytes; extended: 16384, 8192, 4096 (00 is reserved: 2048).
    static func receiveBufferSize(_ rctl: UInt32) -> Int {
        let size = Int((rctl >> 16) & 3)
        if rctl & E1000Bits.rctlSizeExtension != 0 && size != 0 { return [2048, 16384, 8192, 4096][size] }
        return [2048, 1024, 512, 256][size]
    }

    /// The receive address filters: broadcast with BAM, any multicast with MPE, any unicast with UPE, an exact
    /// match with a valid RA entry, or (multicast) a hit in the MTA hash chosen by RCTL.MO; VLAN frames also
    /// need their VLAN ID in VFTA when RCTL.VFE is set.
    func accepts(_ frame: [UInt8], tagged: Bool, _ state: E1000State) -> Bool {
        let regs = state.regs   // shares the storage; nothing writes while this runs
        let rctl = regs[E1000Register.rctl >> 2]
        if tagged && rctl & E1000Bits.rctlVLANFilter != 0 {
            let vid = Int(frame.bigEndian16(at: 14) & 0xFFF)
            guard regs[(E1000Register.vfta >> 2) + (vid >> 5)] & (1 << UInt32(vid & 31)) != 0 else { return false }
        }
        let multicast = frame[0] & 1 != 0
        if multicast {
            if rctl & E1000Bits.rctlBroadcastAccept != 0 && frame[0..<6].allSatisfy({ $0 == 0xFF }) { return true }
            if rctl & E1000Bits.rctlMulticastPromiscuous != 0 { return true }
        } else if rctl & E1000Bits.rctlUnicastPromiscuous != 0 {
            return true
        }
        let low = UInt32(frame[0]) | UInt32(frame[1]) << 8 | UInt32(frame[2]) << 16 | UInt32(frame[3]) << 24
        let high = UInt32(frame[4]) | UInt32(frame[5]) << 8
        for entry in 0..<16 {
            let ral = regs[(E1000Register.ra >> 2) + 2 * entry], rah = regs[(E1000Register.ra >> 2) + 2 * entry + 1]
            // Valid, selecting the destination address (AS = 00), and equal.
            if rah & E1000Bits.rahAddressValid != 0 && rah & 0x3_0000 == 0 && ral == low && rah & 0xFFFF == high { return true }
        }
        guard multicast else { return false }
        let shift: UInt16 = [4, 3, 2, 0][Int((rctl >> 12) & 3)]
        let hash = Int(((UInt16(frame[5]) << 8 | UInt16(frame[4])) >> shift) & 0xFFF)
        return regs[(E1000Register.mta >> 2) + (hash >> 5)] & (1 << UInt32(hash & 31)) != 0
    }

    func countReceived(_ frame: [UInt8], length: Int, _ state: inout E1000State) {
        E1000.count(E1000Register.tpr, &state)
        E1000.count(E1000Register.gprc, &state)
        E1000.addOctets(0, length, &state)   // GORC
        E1000.addOctets(2, length, &state)   // TOR
        if frame[0] & 1 != 0 {
            E1000.count(frame[0..<6].allSatisfy { $0 == 0xFF } ? E1000Register.bprc : E1000Register.mprc, &state)
        }
        E1000.countSize(length, first: E1000Register.prc64, &state)
        state.counters.framesReceived += 1
    }
}
