// A scripted Linux guest: what Linux 6.1's hv_utils does with each IC packet, transcribed by hand from
// drivers/hv/hv_util.c (heartbeat_onchannelcallback, shutdown_onchannelcallback) and drivers/hv/channel_mgmt.c
// (vmbus_prep_negotiate_resp). It works on raw bytes at Linux's offsets and shares no code with the VSP module,
// so a layout mistake on either side shows up as a failed test.

/// Little-endian access at fixed offsets, as the C code's packed structs do.
func le16(_ bytes: [UInt8], _ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }

func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}

func put16(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt16) {
    for index in 0..<2 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
}

func put32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
}

func put64(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64) {
    for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
}

struct LinuxHVUtilGuest {
    enum Service { case heartbeat, shutdown }

    // include/linux/hyperv.h and include/uapi/linux/hyperv.h
    static let icmsgHdr = 8 + 20                      // ICMSG_HDR
    static let maxVerCount = 100                      // IC_VERSION_NEGOTIATION_MAX_VER_COUNT
    static let hvSOK: UInt32 = 0
    static let hvEFail: UInt32 = 0x8000_4005
    static let hvHypPageSize = 4096

    // hv_util.c
    static let fwVersions: [UInt32] = [3 << 16 | 0, 1 << 16 | 0]                  // UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION
    static let hbVersions: [UInt32] = [3 << 16 | 0, 1 << 16 | 0]                  // HB_VERSION, HB_VERSION_1
    static let sdVersions: [UInt32] = [3 << 16 | 2, 3 << 16 | 1, 3 << 16 | 0, 1 << 16 | 0]

    let service: Service
    var fwVersions = LinuxHVUtilGuest.fwVersions
    var srvVersions: [UInt32]
    var hibernationSupported = false
    /// Linux before 5.x knew only flags 0 and 1 (power off); set false to model it refusing a reboot.
    var knowsRestart = true
    /// What the guest went on to do after answering: "poweroff", "reboot", "hibernate".
    private(set) var actions: [String] = []
    /// The negotiated service version, as Linux keeps it (hb_srv_version / sd_srv_version).
    private(set) var srvVersion: UInt32 = 0

    init(_ service: Service) {
        self.service = service
        srvVersions = service == .heartbeat ? Self.hbVersions : Self.sdVersions
    }

    /// One packet from the host, as the channel callback sees it; the reply Linux sends (inband, flags 0,
    /// the same trans_id), or nil where Linux sends nothing.
    mutating func receive(_ data: [UInt8], transactionID requestid: UInt64) -> (payload: [UInt8], transactionID: UInt64)? {
        // vmbus_recvpacket: recvlen is the packet length less its header, i.e. the data padded to 8.
        var buf = data + [UInt8](repeating: 0, count: (8 - data.count % 8) % 8)
        let recvlen = buf.count
        guard recvlen <= Self.hvHypPageSize else { return nil }   // -ENOBUFS: nothing read
        guard recvlen > 0 else { return nil }
        guard recvlen >= Self.icmsgHdr else { return nil }        // "Packet length too small"
        let icmsgtype = le16(buf, 12)
        var work: String?
        if icmsgtype == 0 {                                       // ICMSGTYPE_NEGOTIATE
            if let version = prepNegotiateResp(&buf, buflen: recvlen) { srvVersion = version }
        } else if service == .heartbeat && icmsgtype == 1 {       // ICMSGTYPE_HEARTBEAT
            guard recvlen >= Self.icmsgHdr + 8 else { return nil }
            put64(&buf, Self.icmsgHdr, le64(buf, Self.icmsgHdr) &+ 1)
        } else if service == .shutdown && icmsgtype == 3 {        // ICMSGTYPE_SHUTDOWN
            guard recvlen >= Self.icmsgHdr + 12 + 2048 else { return nil }
            let status: UInt32
            switch le32(buf, Self.icmsgHdr + 8) {
            case 0, 1:
                status = Self.hvSOK
                work = "poweroff"
            case 2 where knowsRestart, 3 where knowsRestart:
                status = Self.hvSOK
                work = "reboot"
            case 4 where knowsRestart, 5 where knowsRestart:
                status = hibernationSupported ? Self.hvSOK : Self.hvEFail
                if hibernationSupported { work = "hibernate" }
            default:
                status = Self.hvEFail
            }
            put32(&buf, 20, status)
        } else {
            put32(&buf, 20, Self.hvEFail)                         // "Invalid msg type"
        }
        buf[25] = 1 | 4                                           // ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE
        if let work { actions.append(work) }                      // schedule_work after vmbus_sendpacket
        return (buf, requestid)
    }

    /// vmbus_prep_negotiate_resp, returning the negotiated service version on success.
    private func prepNegotiateResp(_ buf: inout [UInt8], buflen: Int) -> UInt32? {
        let negop = Self.icmsgHdr
        guard buflen >= negop + 4 else { return nil }             // up to offsetof(icmsg_negotiate, reserved)
        put16(&buf, 18, 0x10)                                     // icmsghdrp->icmsgsize = 0x10
        let frameworkCount = Int(le16(buf, negop))
        let messageCount = Int(le16(buf, negop + 2))
        var icframeMajor = UInt16(frameworkCount), icframeMinor: UInt16 = 0
        var icmsgMajor = UInt16(messageCount), icmsgMinor: UInt16 = 0
        var foundMatch = false
        func versionData(_ index: Int) -> (major: UInt16, minor: UInt16) {
            (le16(buf, negop + 8 + 4 * index), le16(buf, negop + 8 + 4 * index + 2))
        }
        let sane = frameworkCount <= Self.maxVerCount && messageCount <= Self.maxVerCount
            && Self.icmsgHdr + 8 + 4 * (frameworkCount + messageCount) <= buflen
        if sane {
            search: for version in fwVersions {
                for index in 0..<frameworkCount
                where versionData(index) == (UInt16(version >> 16), UInt16(version & 0xFFFF)) {
                    (icframeMajor, icframeMinor) = versionData(index)
                    foundMatch = true
                    break search
                }
            }
            if foundMatch {
                foundMatch = false
                search: for version in srvVersions {
                    for index in frameworkCount..<frameworkCount + messageCount
                    where versionData(index) == (UInt16(version >> 16), UInt16(version & 0xFFFF)) {
                        (icmsgMajor, icmsgMinor) = versionData(index)
                        foundMatch = true
                        break search
                    }
                }
            }
        }
        // fw_error:
        put16(&buf, negop, foundMatch ? 1 : 0)
        put16(&buf, negop + 2, foundMatch ? 1 : 0)
        // icversion_data[0] and [1]; what lies past recvlen is not sent, so it is not modelled.
        for (offset, value) in [(negop + 8, icframeMajor), (negop + 10, icframeMinor),
                                (negop + 12, icmsgMajor), (negop + 14, icmsgMinor)] where offset + 2 <= buf.count {
            put16(&buf, offset, value)
        }
        return foundMatch ? UInt32(icmsgMajor) << 16 | UInt32(icmsgMinor) : nil
    }
}
