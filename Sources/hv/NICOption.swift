import NetworkBackends

/// One `--nic KIND,net=SPEC[,mac=XX:XX:XX:XX:XX:XX]`: a virtual NIC and the host back end its frames go to.
struct NICOption: Equatable {
    enum Kind: String, Equatable {
        /// NetVSP over VMBus (Linux: hv_netvsc).
        case synthetic
        /// An Intel 82540EM on hv's PCI bus (Linux: e1000).
        case emulated
    }

    var kind: Kind
    var backend: NetworkBackendSpec
    var mac: [UInt8]?

    static let usage = "KIND,net=SPEC[,mac=XX:XX:XX:XX:XX:XX] with KIND synthetic or emulated and SPEC one of \(NetworkBackendSpec.acceptedForms)"

    /// The back end's own options contain commas (null:rx=1514,count=N), so every item after `net=` that is not a
    /// NIC option (`mac=`) belongs to the back end.
    init(parsing text: String) throws(NICOptionError) {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let kind = Kind(rawValue: items[0]) else {
            throw NICOptionError("--nic '\(text)': the kind must be synthetic or emulated (\(NICOption.usage))")
        }
        var net: String?
        var mac: [UInt8]?
        for item in items.dropFirst() {
            if item.hasPrefix("mac=") {
                guard let parsed = NICOption.parseMAC(String(item.dropFirst(4))) else {
                    throw NICOptionError("--nic '\(text)': '\(item)' is not a unicast MAC address like mac=52:54:00:12:34:56")
                }
                mac = parsed
            } else if item.hasPrefix("net=") {
                guard net == nil else { throw NICOptionError("--nic '\(text)': net= given twice") }
                net = String(item.dropFirst(4))
            } else if let current = net {
                net = current + "," + item
            } else {
                throw NICOptionError("--nic '\(text)': unknown option '\(item)' (\(NICOption.usage))")
            }
        }
        guard let net else { throw NICOptionError("--nic '\(text)': net= is missing (\(NICOption.usage))") }
        do { backend = try NetworkBackendSpec(parsing: net) } catch { throw NICOptionError("--nic '\(text)': \(error)") }
        self.kind = kind
        self.mac = mac
    }

    /// Six hex bytes separated by colons; multicast addresses (bit 0 of the first byte) are refused.
    static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard bytes.count == 6, bytes[0] & 1 == 0 else { return nil }
        return bytes
    }

    /// A locally administered address for NIC number `index` when none is given: 52:54:00:00:00:index+1.
    static func defaultMAC(index: Int) -> [UInt8] { [0x52, 0x54, 0x00, 0x00, UInt8(truncatingIfNeeded: (index + 1) >> 8), UInt8(truncatingIfNeeded: index + 1)] }
}

struct NICOptionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
