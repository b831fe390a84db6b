// The command-line form of a back end, and the factory that makes one.
//
//   tap:NAME                            a Linux tap device NAME, created if missing (then gone when hv exits) or
//                                       attached if it exists; brought up if down
//   pcap:IFACE                          the host interface IFACE shared through libpcap (promiscuous capture of
//                                       incoming frames, injection of the guest's)
//   null                                no network: the guest's frames are counted and dropped
//   null:rx=SIZE[,count=N][,rate=FPS]   the same, plus a source that sends the guest SIZE-byte frames (14…65535):
//                                       N of them (default: until hv stops), at most FPS per second (default: as
//                                       fast as the guest takes them); for benchmarks
//
// Numbers are decimal. `--capture FILE.pcap` is separate: pass a `CaptureRecorder` to `makeBackend`.

public enum NetworkBackendSpec: Sendable, Equatable, CustomStringConvertible {
    case tap(interface: String)
    case pcap(interface: String)
    case null(source: NullBackend.Source?)

    /// The accepted forms, for help texts and error messages.
    public static let acceptedForms = "tap:NAME, pcap:IFACE, null, null:rx=SIZE[,count=N][,rate=FPS]"

    public init(parsing text: String) throws(NetworkBackendError) {
        func invalid(_ why: String) -> NetworkBackendError {
            NetworkBackendError("invalid network back end '\(text)': \(why); accepted forms: \(NetworkBackendSpec.acceptedForms)")
        }
        let kind: Substring, argument: Substring?
        if let colon = text.firstIndex(of: ":") {
            kind = text[..<colon]
            argument = text[text.index(after: colon)...]
        } else {
            kind = text[...]
            argument = nil
        }
        switch kind {
        case "tap":
            guard let argument, !argument.isEmpty else { throw invalid("tap needs an interface name") }
            if let problem = TapBackend.problem(withInterfaceName: String(argument)) { throw invalid(problem) }
            self = .tap(interface: String(argument))
        case "pcap":
            guard let argument, !argument.isEmpty else { throw invalid("pcap needs an interface name") }
            if let problem = TapBackend.problem(withInterfaceName: String(argument)) { throw invalid(problem) }
            self = .pcap(interface: String(argument))
        case "null":
            guard let argument else { self = .null(source: nil); return }
            var size: Int?, count: UInt64?, rate: UInt64?
            for option in argument.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[1].isEmpty else { throw invalid("'\(option)' is not KEY=VALUE") }
                let key = parts[0], value = parts[1]
                // Decimal digits only: UInt64("+5") would also parse.
                guard value.allSatisfy({ $0.isASCII && $0.isNumber }), let number = UInt64(value) else {
                    throw invalid("\(key) must be a decimal number, not '\(value)'")
                }
                switch key {
                case "rx":
                    guard size == nil else { throw invalid("rx is given twice") }
                    guard number <= UInt64(NullBackend.Source.frameSizes.upperBound) else {
                        throw invalid("rx must be \(NullBackend.Source.frameSizes.lowerBound)…\(NullBackend.Source.frameSizes.upperBound) bytes")
                    }
                    size = Int(number)
                case "count":
                    guard count == nil else { throw invalid("count is given twice") }
                    count = number
                case "rate":
                    guard rate == nil else { throw invalid("rate is given twice") }
                    rate = number
                default:
                    throw invalid("unknown option '\(key)' (null takes rx, count, rate)")
                }
            }
            guard let size else { throw invalid("null's options need rx=SIZE") }
            let source = NullBackend.Source.frames(size: size, count: count, rate: rate)
            if let problem = source.problem { throw invalid(problem) }
            self = .null(source: source)
        default:
            throw invalid(text.isEmpty ? "empty" : "unknown kind '\(kind)'")
        }
    }

    /// The spec in the form `init(parsing:)` reads.
    public var description: String {
        switch self {
        case .tap(let interface): "tap:\(interface)"
        case .pcap(let interface): "pcap:\(interface)"
        case .null(let source): source.map { "null:\($0)" } ?? "null"
        }
    }

    /// Opens the back end; with `capture`, wrapped so that every frame in both directions is also written there.
    public func makeBackend(capture: CaptureRecorder? = nil) throws(NetworkBackendError) -> any NetworkBackend {
        let backend: any NetworkBackend = switch self {
        case .tap(let interface): try TapBackend(interface: interface)
        case .pcap(let interface): try PcapBackend(interface: interface)
        case .null(let source): NullBackend(source: source)
        }
        guard let capture else { return backend }
        return CapturingBackend(wrapping: backend, recorder: capture)
    }
}
