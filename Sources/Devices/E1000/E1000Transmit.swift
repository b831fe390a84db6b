import Partition
import Synchronization

extension E1000 {
    /// Descriptors walked per turn of the device lock.
    static let transmitChunk = 16
    /// Kicks with at most this many descriptors pending are walked on the vCPU that wrote TDT.
    static let inlineTransmitLimit: UInt32 = 2

    /// A TDT or TCTL write: walks the ring under the device lock, then hands the frames to the back end in ring
    /// order (the transmit lock keeps two vCPUs' kicks from interleaving).
    func transmit() {
        transmitLock.withLock { _ in walkAndSend() }
    }

    /// A kick when the NIC has a transmit thread: a frame or two are sent at once on the vCPU (waking a thread
    /// would cost more than the walk), a batch goes to the thread so the guest can fill the ring meanwhile.
    func kickTransmit(_ worker: WakeableThread) {
        let pending = state.withLock { state -> UInt32 in
            let count = max(1, state.regs[E1000Register.tdlen >> 2] / 16)
            return (state.regs[E1000Register.tdt >> 2] &+ count &- state.regs[E1000Register.tdh >> 2]) % count
        }
        if pending <= E1000.inlineTransmitLimit, transmitLock.withLockIfAvailable({ _ in walkAndSend() }) != nil { return }
        worker.kick()
    }

    /// Walks the ring and sends, with `transmitLock` held.
    func walkAndSend() {
        // A few descriptors at a time, so the guest's register accesses (on its vCPU) do not wait for a whole ring
        // walk behind the device lock.
        while true {
            let (frames, more) = state.withLock { state in
                let before = state.regs[E1000Register.tdh >> 2]
                let frames = walkTransmitRing(&state, limit: E1000.transmitChunk)
                let head = state.regs[E1000Register.tdh >> 2]
                let count = max(1, state.regs[E1000Register.tdlen >> 2] / 16)
                // Go on only when the chunk ran out; a walk that stopped early (a bad descriptor) stays stopped.
                let walked = (head &+ count &- before) % count
                return (frames, walked == UInt32(E1000.transmitChunk) && head != state.regs[E1000Register.tdt >> 2])
            }
            if !frames.isEmpty { send(frames) }
            if !more { break }
        }
    }

    func send(_ frames: [[UInt8]]) {
        var flat: [UInt8] = []
        flat.reserveCapacity(frames.reduce(0) { $0 + $1.count })
        var ranges: [Range<Int>] = []
        for frame in frames {
            ranges.append(flat.count..<flat.count + frame.count)
            flat += frame
        }
        flat.withUnsafeBytes { raw in
            _ = backend.transmit(ranges.map { UnsafeRawBufferPointer(rebasing: raw[$0]) })
        }
    }

    /// Processes descriptors from TDH up to TDT: context descriptors are saved, data and legacy descriptors
    /// add their buffers to the packet, EOP finishes it; RS (or RPS) writes DD back. TDH follows. Raises TXDW
    /// for any write-back and TXQE when the ring is empty. Returns the finished frames.
    func walkTransmitRing(_ state: inout E1000State, limit: Int = .max) -> [[UInt8]] {
        // Single registers, not a copy of the file: holding one would make every write below copy 128 KiB.
        guard state.regs[E1000Register.tctl >> 2] & E1000Bits.tctlEnable != 0 else { return [] }
        let count = Int(state.regs[E1000Register.tdlen >> 2]) / 16
        var head = Int(state.regs[E1000Register.tdh >> 2])
        let tail = Int(state.regs[E1000Register.tdt >> 2])
        guard head != tail else {
            raise(E1000Bits.txqe, &state)
            return []
        }
        guard count > 0, head < count, tail < count else {
            note(\.transmitRingErrors, &state, "TX ring of \(count) descriptors with TDH \(head), TDT \(tail): ignored")
            return []
        }
        guard config.busMasterEnabled else {
            note(\.transmitBlocked, &state, "TX kick while bus mastering is off: ignored")
            return []
        }
        let base = UInt64(state.regs[E1000Register.tdbah >> 2]) << 32 | UInt64(state.regs[E1000Register.tdbal >> 2] & ~0xF)
        var frames: [[UInt8]] = []
        var wroteBack = false
        var processed = 0
        while head != tail && processed < min(count, limit) {
            let address = base &+ UInt64(head) &* 16
            guard let descriptor = try? memory.read(at: address, count: 16) else {
                note(\.transmitDescriptorErrors, &state, "TX descriptor \(head) at 0x\(String(address, radix: 16)) is outside guest RAM")
                break
            }
            let (report, finished) = processDescriptor(descriptor, &state)
            frames += finished
            if report {
                // DD into the status byte; EC, LC and TU stay clear.
                let status = descriptor[12] & 0xF0 | E1000Bits.txDescriptorDone
                do { try memory.store(status, at: address + 12) } catch {
                    note(\.transmitDescriptorErrors, &state, "TX descriptor \(head): status write-back failed")
                }
                wroteBack = true
            }
            head = (head + 1) % count
            processed += 1
        }
        state.regs[E1000Register.tdh >> 2] = UInt32(head)
        raise((wroteBack ? E1000Bits.txdw : 0) | (head == tail ? E1000Bits.txqe : 0), &state)
        return frames
    }

    /// One descriptor. Returns whether its status must be written back and the frames it completed.
    func processDescriptor(_ d: [UInt8], _ state: inout E1000State) -> (report: Bool, frames: [[UInt8]]) {
        let address = d[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        let lower = UInt32(d[8]) | UInt32(d[9]) << 8 | UInt32(d[10]) << 16 | UInt32(d[11]) << 24
        let command = d[11]
        let extended = command & E1000Bits.txExtension != 0
        if extended && (lower >> 20) & 0xF == 0 {
            // Context descriptor: saved for the packets after it.
            let context = E1000TransmitContext(d)
            if context.command & E1000Bits.txTSE != 0 {
                state.transmit.segmentationContext = context
            } else {
                state.transmit.checksumContext = context
            }
            return (command & E1000Bits.txReportStatus != 0, [])
        }

        let length = extended ? Int(lower & 0xF_FFFF) : Int(lower & 0xFFFF)
        if !state.transmit.started {
            state.transmit.started = true
            state.transmit.options = extended ? d[13] : 0
            state.transmit.tcpSegmentation = extended && command & E1000Bits.txTSE != 0
        }
        if command & E1000Bits.txVLAN != 0 { state.transmit.vlanTag = UInt16(d[14]) | UInt16(d[15]) << 8 }
        if !extended && command & E1000Bits.txEOP != 0 && command & E1000Bits.txInsertChecksum != 0 {
            state.transmit.legacyChecksum = (offset: Int(d[10]), start: Int(d[13]))
        }
        if length > 0 && !state.transmit.dropping {
            let limit = state.transmit.tcpSegmentation ? E1000.maximumTSOPacket : E1000.maximumPacket
            if state.transmit.packet.count + length > limit {
                state.transmit.dropping = true
                note(\.transmitMalformed, &state, "TX packet over \(limit) bytes: dropped")
            } else {
                do { try state.transmit.packet += memory.read(at: address, count: length) } catch {
                    state.transmit.dropping = true
                    note(\.transmitDMAErrors, &state, "TX buffer at 0x\(String(address, radix: 16)) (\(length) bytes) is outside guest RAM: packet dropped")
                }
            }
        }
        var frames: [[UInt8]] = []
        if command & E1000Bits.txEOP != 0 {
            frames = finishPacket(&state)
            state.transmit.endPacket()
        }
        let reportBits = E1000Bits.txReportStatus | (extended ? 0 : E1000Bits.txReportPacketSent)
        return (command & reportBits != 0, frames)
    }

    /// The assembled packet as frames on the wire: offloads applied, VLAN tag inserted, short frames padded.
    func finishPacket(_ state: inout E1000State) -> [[UInt8]] {
        let tx = state.transmit
        guard !tx.dropping else { return [] }
        guard tx.packet.count >= 14 else {
            note(\.transmitMalformed, &state, "TX packet of \(tx.packet.count) bytes: dropped")
            return []
        }
        var frames: [[UInt8]]
        if tx.tcpSegmentation {
            guard let context = tx.segmentationContext,
                  let segments = E1000Offload.segment(tx.packet, context: context, options: tx.options) else {
                E1000.count(E1000Register.tsctfc, &state)
                note(\.transmitMalformed, &state, "TSO packet of \(tx.packet.count) bytes without a usable context: dropped")
                return []
            }
            E1000.count(E1000Register.tsctc, &state)
            frames = segments
        } else {
            var packet = tx.packet
            if tx.options != 0, let context = tx.checksumContext {
                E1000Offload.applyChecksums(&packet, context: context, options: tx.options)
            }
            if let legacy = tx.legacyChecksum {
                E1000Offload.insertChecksum(&packet, start: legacy.start, offset: legacy.offset, end: 0)
            }
            frames = [packet]
        }
        let vlan = state.regs[E1000Register.ctrl >> 2] & E1000Bits.ctrlVLANEnable != 0 ? tx.vlanTag : nil
        let pad = state.regs[E1000Register.tctl >> 2] & E1000Bits.tctlPadShortPackets != 0
        let vet = UInt16(truncatingIfNeeded: state.regs[E1000Register.vet >> 2])
        for index in frames.indices {
            if let vlan { E1000Offload.insertVLANTag(&frames[index], etherType: vet, tag: vlan) }
            if pad && frames[index].count < 60 { frames[index] += [UInt8](repeating: 0, count: 60 - frames[index].count) }
            countTransmitted(frames[index], &state)
        }
        return frames
    }

    func countTransmitted(_ frame: [UInt8], _ state: inout E1000State) {
        let length = frame.count + 4   // with the FCS the wire adds
        E1000.count(E1000Register.tpt, &state)
        E1000.count(E1000Register.gptc, &state)
        E1000.addOctets(1, length, &state)   // GOTC
        E1000.addOctets(3, length, &state)   // TOT
        if frame[0] & 1 != 0 {
            E1000.count(frame[0..<6].allSatisfy { $0 == 0xFF } ? E1000Register.bptc : E1000Register.mptc, &state)
        }
        E1000.countSize(length, first: E1000Register.ptc64, &state)
        state.counters.framesTransmitted += 1
    }
}
