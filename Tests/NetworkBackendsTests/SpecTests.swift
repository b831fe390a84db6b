import Testing
@testable import NetworkBackends

@Suite struct NetworkBackendSpecTests {
    @Test(arguments: [
        ("tap:hv0", NetworkBackendSpec.tap(interface: "hv0")),
        ("tap:hv-tap.1_a", .tap(interface: "hv-tap.1_a")),
        ("pcap:eth1", .pcap(interface: "eth1")),
        ("null", .null(source: nil)),
        ("null:rx=1514", .null(source: .frames(size: 1514))),
        ("null:rx=64,count=1000", .null(source: .frames(size: 64, count: 1000))),
        ("null:rate=5000,rx=60,count=0", .null(source: .frames(size: 60, count: 0, rate: 5000))),
    ])
    func parsesAcceptedForms(text: String, expected: NetworkBackendSpec) throws {
        let spec = try NetworkBackendSpec(parsing: text)
        #expect(spec == expected)
        // The description reads back as the same spec.
        #expect(try NetworkBackendSpec(parsing: spec.description) == spec)
    }

    @Test(arguments: [
        "", "tap", "tap:", "tap:abcdefghijklmnop", "tap:a b", "tap:a/b", "pcap", "pcap:", "vde:sw0", "TAP:hv0",
        "null:", "null:rx", "null:rx=", "null:rx=abc", "null:rx=+64", "null:rx=13", "null:rx=65536",
        "null:rx=99999999999999999999", "null:count=5", "null:rx=64,rx=64", "null:rx=64,rate=0", "null:rx=64,tx=5",
        "null:rx=64,", "null,rx=64",
    ])
    func rejectsOtherStringsListingTheAcceptedForms(text: String) {
        #expect {
            try NetworkBackendSpec(parsing: text)
        } throws: { error in
            let description = (error as? NetworkBackendError)?.description ?? ""
            return description.hasPrefix("invalid network back end '\(text)': ")
                && description.hasSuffix("accepted forms: \(NetworkBackendSpec.acceptedForms)")
                && !description.contains("\n")
        }
    }

    @Test func acceptedFormsNameEveryKind() {
        for form in ["tap:NAME", "pcap:IFACE", "null", "null:rx=SIZE[,count=N][,rate=FPS]"] {
            #expect(NetworkBackendSpec.acceptedForms.contains(form))
        }
    }

    @Test func nullSpecMakesANullBackendAndCaptureWrapsIt() throws {
        let plain = try NetworkBackendSpec(parsing: "null:rx=100,count=3").makeBackend()
        let null = try #require(plain as? NullBackend)
        #expect(null.source == .frames(size: 100, count: 3))
        #expect(null.name == "null:rx=100,count=3")

        let path = temporaryPath("spec.pcap")
        defer { removeTemporary(path) }
        let recorder = try CaptureRecorder(path: path)
        let wrapped = try NetworkBackendSpec(parsing: "null").makeBackend(capture: recorder)
        let capturing = try #require(wrapped as? CapturingBackend)
        #expect(capturing.inner is NullBackend)
        #expect(capturing.name == "null")
        recorder.close()
    }
}
