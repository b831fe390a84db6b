/// A TX context descriptor (DEXT = 1, DTYP = 0): where the IP and TCP/UDP headers and checksums are, and for
/// TCP segmentation the header length and MSS. Offsets come from the guest: every use checks them.
struct E1000TransmitContext: Equatable {
    var ipStart: Int          // IPCSS
    var ipChecksumOffset: Int // IPCSO
    var ipEnd: Int            // IPCSE, inclusive; 0 = to the end
    var l4Start: Int          // TUCSS
    var l4ChecksumOffset: Int // TUCSO
    var l4End: Int            // TUCSE, inclusive; 0 = to the end
    var payloadLength: Int    // PAYLEN
    var command: UInt8        // TUCMD
    var headerLength: Int     // HDRLEN
    var mss: Int

    /// Decodes the 16 descriptor bytes.
    init(_ d: [UInt8]) {
        ipStart = Int(d[0])
        ipChecksumOffset = Int(d[1])
        ipEnd = Int(UInt16(d[2]) | UInt16(d[3]) << 8)
        l4Start = Int(d[4])
        l4ChecksumOffset = Int(d[5])
        l4End = Int(UInt16(d[6]) | UInt16(d[7]) << 8)
        payloadLength = Int(UInt32(d[8]) | UInt32(d[9]) << 8 | UInt32(d[10] & 0x0F) << 16)
        command = d[11]
        headerLength = Int(d[13])
        mss = Int(UInt16(d[14]) | UInt16(d[15]) << 8)
    }

    var isTCP: Bool { command & E1000Bits.tucmdTCP != 0 }
    var isIPv4: Bool { command & E1000Bits.tucmdIPv4 != 0 }
}

/// What the 82540EM does to an assembled TX packet: checksum insertion, TCP segmentation, VLAN tag insertion.
/// Pure functions over byte arrays, so they are tested without a device.
enum E1000Offload {
    /// TSO never produces more segments than this from one packet; a guest asking for more (a tiny MSS under a
    /// large payload) gets the packet dropped rather than hv flooding its back end.
    static let maximumSegments = 1024

    /// Stores the ones'-complement checksum of bytes `start...end` (end 0 or past the frame: to the end) at
    /// `offset`, big-endian. What is at `offset` already counts: software zeroes it or seeds it with a
    /// pseudo-header sum. Out-of-range offsets leave the frame as it is.
    static func insertChecksum(_ frame: inout [UInt8], start: Int, offset: Int, end: Int) {
        guard start < frame.count, offset >= 0, offset + 2 <= frame.count else { return }
        let last = (end == 0 || end >= frame.count) ? frame.count - 1 : end
        guard last >= start else { return }
        let sum = InternetChecksum.sum(frame[start...last])
        frame.setBigEndian16(~InternetChecksum.fold(sum), at: offset)
    }

    /// The checksums a non-TSO packet asked for with POPTS, using the checksum context.
    static func applyChecksums(_ frame: inout [UInt8], context: E1000TransmitContext, options: UInt8) {
        if options & E1000Bits.poptsIPChecksum != 0 {
            insertChecksum(&frame, start: context.ipStart, offset: context.ipChecksumOffset, end: context.ipEnd)
        }
        if options & E1000Bits.poptsL4Checksum != 0 {
            insertChecksum(&frame, start: context.l4Start, offset: context.l4ChecksumOffset, end: context.l4End)
        }
    }

    /// Cuts a TSO packet (header of HDRLEN bytes, then payload) into frames of the header plus up to MSS
    /// payload bytes. Per frame: IPv4 total length and ID + n (or the IPv6 payload length), TCP sequence
    /// number + n × MSS with FIN and PSH only on the last frame (or the UDP length), then the checksums
    /// POPTS asks for; the TCP/UDP checksum field holds the pseudo-header sum without length, to which the
    /// segment's L4 length is added first. Nil when the context cannot describe this packet.
    static func segment(_ packet: [UInt8], context c: E1000TransmitContext, options: UInt8) -> [[UInt8]]? {
        let headerLength = c.headerLength, mss = c.mss
        guard headerLength > 0, headerLength <= packet.count, mss > 0 else { return nil }
        let payloadCount = packet.count - headerLength
        let segments = max(1, (payloadCount + mss - 1) / mss)
        guard segments <= maximumSegments else { return nil }
        let header = Array(packet[0..<headerLength])
        let ipID: UInt16? = c.isIPv4 && c.ipStart + 6 <= headerLength ? header.bigEndian16(at: c.ipStart + 4) : nil
        let sequence: UInt32? = c.isTCP && c.l4Start + 8 <= headerLength ? header.bigEndian32(at: c.l4Start + 4) : nil

        var frames: [[UInt8]] = []
        frames.reserveCapacity(segments)
        for index in 0..<segments {
            let start = headerLength + index * mss
            let end = min(start + mss, packet.count)
            var frame = header
            frame += packet[start..<end]
            let last = index == segments - 1
            if c.isIPv4 {
                if c.ipStart + 4 <= headerLength { frame.setBigEndian16(UInt16(truncatingIfNeeded: frame.count - c.ipStart), at: c.ipStart + 2) }
                if let ipID { frame.setBigEndian16(ipID &+ UInt16(truncatingIfNeeded: index), at: c.ipStart + 4) }
            } else if c.ipStart + 6 <= headerLength && frame.count >= c.ipStart + 40 {
                frame.setBigEndian16(UInt16(truncatingIfNeeded: frame.count - c.ipStart - 40), at: c.ipStart + 4)
            }
            if c.isTCP {
                if let sequence { frame.setBigEndian32(sequence &+ UInt32(truncatingIfNeeded: index * mss), at: c.l4Start + 4) }
                if !last && c.l4Start + 14 <= headerLength { frame[c.l4Start + 13] &= ~0x09 }   // FIN, PSH
            } else if c.l4Start + 6 <= headerLength {
                frame.setBigEndian16(UInt16(truncatingIfNeeded: frame.count - c.l4Start), at: c.l4Start + 4)
            }
            if options & E1000Bits.poptsIPChecksum != 0 {
                insertChecksum(&frame, start: c.ipStart, offset: c.ipChecksumOffset, end: c.ipEnd)
            }
            if options & E1000Bits.poptsL4Checksum != 0, c.l4Start < frame.count, c.l4ChecksumOffset + 2 <= frame.count {
                let seeded = UInt32(frame.bigEndian16(at: c.l4ChecksumOffset)) + UInt32(truncatingIfNeeded: (frame.count - c.l4Start) & 0xFFFF)
                frame.setBigEndian16(InternetChecksum.fold(seeded), at: c.l4ChecksumOffset)
                insertChecksum(&frame, start: c.l4Start, offset: c.l4ChecksumOffset, end: c.l4End)
            }
            frames.append(frame)
        }
        return frames
    }

    /// Inserts an 802.1Q tag after the MAC addresses.
    static func insertVLANTag(_ frame: inout [UInt8], etherType: UInt16, tag: UInt16) {
        guard frame.count >= 12 else { return }
        frame.insert(contentsOf: [UInt8(etherType >> 8), UInt8(etherType & 0xFF), UInt8(tag >> 8), UInt8(tag & 0xFF)], at: 12)
    }

    /// RX checksum offload (RXCSUM): status and error bits for an IPv4 header and its TCP/UDP checksum, and
    /// the raw packet checksum from byte PCSS. Without IPOFL/TUOFL the status says "ignore checksum" (IXSM).
    static func receiveChecksum(_ frame: [UInt8], rxcsum: UInt32) -> (status: UInt8, errors: UInt8, checksum: UInt16) {
        let packetStart = Int(rxcsum & 0xFF)
        let packetChecksum = packetStart < frame.count ? InternetChecksum.fold(InternetChecksum.sum(frame[packetStart...])) : 0
        let ipOffload = rxcsum & E1000Bits.rxcsumIPOffload != 0, l4Offload = rxcsum & E1000Bits.rxcsumTCPUDPOffload != 0
        guard ipOffload || l4Offload else { return (E1000Bits.rxIgnoreChecksum, 0, packetChecksum) }
        var l3 = 14
        guard frame.count >= 14 else { return (0, 0, packetChecksum) }
        var etherType = frame.bigEndian16(at: 12)
        if etherType == 0x8100, frame.count >= 18 {
            etherType = frame.bigEndian16(at: 16)
            l3 = 18
        }
        guard etherType == 0x0800, frame.count >= l3 + 20, frame[l3] >> 4 == 4 else { return (0, 0, packetChecksum) }
        let headerLength = Int(frame[l3] & 0x0F) * 4
        guard headerLength >= 20, l3 + headerLength <= frame.count else { return (0, 0, packetChecksum) }
        var status: UInt8 = 0, errors: UInt8 = 0
        if ipOffload {
            status |= E1000Bits.rxIPChecksummed
            if InternetChecksum.fold(InternetChecksum.sum(frame[l3..<l3 + headerLength])) != 0xFFFF { errors |= E1000Bits.rxErrorIP }
        }
        let totalLength = Int(frame.bigEndian16(at: l3 + 2))
        let fragment = frame.bigEndian16(at: l3 + 6) & 0x3FFF != 0
        let proto = frame[l3 + 9]
        guard l4Offload, !fragment, proto == 6 || proto == 17, totalLength >= headerLength, l3 + totalLength <= frame.count else {
            return (status, errors, packetChecksum)
        }
        let l4 = l3 + headerLength, l4Length = totalLength - headerLength
        status |= E1000Bits.rxTCPChecksummed
        if proto == 17 && l4Length >= 8 && frame.bigEndian16(at: l4 + 6) == 0 { return (status, errors, packetChecksum) } // UDP without checksum
        let pseudo = InternetChecksum.pseudoHeader(source: frame[l3 + 12..<l3 + 16], destination: frame[l3 + 16..<l3 + 20],
                                                   protocol: proto, length: l4Length)
        if InternetChecksum.fold(InternetChecksum.sum(frame[l4..<l4 + l4Length], initial: pseudo)) != 0xFFFF { errors |= E1000Bits.rxErrorTCP }
        return (status, errors, packetChecksum)
    }
}
