// TapBackend and PcapBackend against real devices, made in a private network namespace (see `NetworkLab`): the
// host's own interfaces and routes are never touched, and no device gets an IP address.
import CPcap
import Glibc
import Testing
@testable import NetworkBackends

@Suite(.enabled(if: NetworkLab.available, NetworkLab.comment), .serialized)
struct TapBackendTests {
    struct Exchange: Sendable {
        var created = false
        var up = false
        var name = ""
        var hostSaw: [[UInt8]] = []
        var guestSaw: [[UInt8]] = []
        var counters = NetworkBackendCounters()
        var busyError = ""
        var afterClose = ""
    }

    @Test func createsATapAndMovesFramesBothWays() throws {
        let sent = [testFrame(marker: 1, size: 60), testFrame(marker: 2, size: 1514)]
        let back = testFrame(marker: 3, size: 1000)
        let result = try NetworkLab.run { () throws -> Exchange in
            var exchange = Exchange()
            do {
                let tap = try TapBackend(interface: "hvtest0")
                exchange.created = tap.created
                exchange.name = tap.name
                exchange.up = try NetworkLab.ip(["-o", "link", "show", "hvtest0"]).contains("<BROADCAST,MULTICAST,UP")
                let host = try PacketSocket(interface: "hvtest0")
                let collector = FrameCollector()
                try tap.start(receive: collector.receive)
                // Guest → host: what the back end writes arrives at the interface.
                _ = sent.withUnsafeBufferPointers { tap.transmit($0) }
                while let frame = host.receive(seconds: 2) { exchange.hostSaw.append(frame); if exchange.hostSaw.count == 2 { break } }
                // Host → guest: what the host sends out of the interface reaches `receive`.
                try host.send(back)
                _ = waitUntil { !collector.testFrames.isEmpty }
                tap.stop()
                exchange.guestSaw = collector.testFrames
                exchange.counters = tap.counters
                // A second open of an attached tap is refused, in one line.
                do { _ = try TapBackend(interface: "hvtest0") } catch { exchange.busyError = "\(error)" }
            }
            // The tap was made by the back end, so it goes away with it.
            exchange.afterClose = (try? NetworkLab.ip(["-o", "link", "show"])) ?? ""
            return exchange
        }
        #expect(result.created)
        #expect(result.up)
        #expect(result.name == "tap:hvtest0")
        #expect(digest(result.hostSaw) == digest(sent))
        #expect(digest(result.guestSaw) == digest([back]))
        #expect(result.counters.transmitted == 2 && result.counters.transmitDropped == 0)
        #expect(result.counters.received >= 1)
        #expect(result.busyError.hasPrefix("tap:hvtest0: ") && result.busyError.contains("Device or resource busy") && !result.busyError.contains("\n"))
        #expect(!result.afterClose.contains("hvtest0"))
    }

    @Test func attachesToAnExistingTapAndBringsItUp() throws {
        let result = try NetworkLab.run { () throws -> Exchange in
            var exchange = Exchange()
            _ = try NetworkLab.ip(["tuntap", "add", "dev", "hvtest1", "mode", "tap"])
            let before = try NetworkLab.ip(["-o", "link", "show", "hvtest1"])
            guard !before.contains(",UP") else { throw NetworkLab.LabError("a new tap is already up: \(before)") }
            do {
                let tap = try TapBackend(interface: "hvtest1")
                exchange.created = tap.created
                exchange.up = try NetworkLab.ip(["-o", "link", "show", "hvtest1"]).contains(",UP")
                let host = try PacketSocket(interface: "hvtest1")
                _ = [testFrame(marker: 9)].withUnsafeBufferPointers { tap.transmit($0) }
                if let frame = host.receive(seconds: 2) { exchange.hostSaw = [frame] }
            }
            // Persistent: still there after the back end closed it.
            exchange.afterClose = try NetworkLab.ip(["-o", "link", "show"])
            return exchange
        }
        #expect(!result.created)
        #expect(result.up)
        #expect(digest(result.hostSaw) == digest([testFrame(marker: 9)]))
        #expect(result.afterClose.contains("hvtest1"))
    }

    @Test func anInterfaceThatIsNotATapIsOneClearLine() throws {
        let message = try NetworkLab.run { () throws -> String in
            do { _ = try TapBackend(interface: "lo"); return "" } catch { return "\(error)" }
        }
        #expect(message.hasPrefix("tap:lo: cannot create or attach the tap device (TUNSETIFF): "))
        #expect(!message.contains("\n"))
    }

    @Test func withoutCapNetAdminCreatingATapIsOneClearLine() throws {
        let message = try NetworkLab.run { () throws -> String in
            guard cpcap_drop_thread_capabilities() == 0 else { throw NetworkLab.LabError("capset: \(errnoText(errno))") }
            do { _ = try TapBackend(interface: "hvtest3"); return "" } catch { return "\(error)" }
        }
        #expect(message == "tap:hvtest3: cannot create or attach the tap device (TUNSETIFF): Operation not permitted (creating a tap needs root or CAP_NET_ADMIN)")
    }

    @Test func invalidNamesAreRefusedBeforeOpeningAnything() {
        #expect(throws: NetworkBackendError.self) { try TapBackend(interface: "") }
        #expect(throws: NetworkBackendError.self) { try TapBackend(interface: "sixteen-bytes-xx") }
    }
}

@Suite(.enabled(if: NetworkLab.available, NetworkLab.comment), .serialized)
struct PcapBackendTests {
    @Test func missingInterfaceIsOneClearLine() throws {
        let message = try NetworkLab.run { () throws -> String in
            do { _ = try PcapBackend(interface: "hvmissing0"); return "" } catch { return "\(error)" }
        }
        #expect(message.hasPrefix("pcap:hvmissing0: no such interface"))
        #expect(!message.contains("\n"))
    }

    @Test func withoutCapNetRawIsOneClearLine() throws {
        let message = try NetworkLab.run { () throws -> String in
            guard cpcap_drop_thread_capabilities() == 0 else { throw NetworkLab.LabError("capset: \(errnoText(errno))") }
            do { _ = try PcapBackend(interface: "lo"); return "" } catch { return "\(error)" }
        }
        #expect(message.hasPrefix("pcap:lo: permission denied (capturing needs root or CAP_NET_RAW)"))
        #expect(!message.contains("\n"))
    }

    struct Exchange: Sendable {
        var pcapSaw: [[UInt8]] = []
        var tapSaw: [[UInt8]] = []
        var pcapCounters = NetworkBackendCounters()
    }

    /// A tap stands for the wire: frames the tap back end writes arrive at the interface, where pcap captures
    /// them; frames pcap injects leave through the interface, where the tap back end reads them. pcap captures
    /// incoming frames only: it must see neither its own frame nor one the host sends out of the interface.
    @Test func capturesIncomingFramesAndInjectsButDoesNotSeeItsOwn() throws {
        let toPcap = testFrame(marker: 0x21, size: 1514)
        let fromPcap = testFrame(marker: 0x22, size: 200)
        let fromHost = testFrame(marker: 0x23, size: 300)
        let result = try NetworkLab.run { () throws -> Exchange in
            var exchange = Exchange()
            do {
                let wire = try TapBackend(interface: "hvtest2")
                let pcap = try PcapBackend(interface: "hvtest2")
                let wireCollector = FrameCollector(), pcapCollector = FrameCollector()
                try wire.start(receive: wireCollector.receive)
                try pcap.start(receive: pcapCollector.receive)
                _ = [toPcap].withUnsafeBufferPointers { wire.transmit($0) }
                _ = waitUntil { !pcapCollector.testFrames.isEmpty }
                _ = [fromPcap].withUnsafeBufferPointers { pcap.transmit($0) }
                _ = waitUntil { !wireCollector.testFrames.isEmpty }
                // The host's own outgoing traffic on the interface (another socket) is not for the guest either.
                try PacketSocket(interface: "hvtest2").send(fromHost)
                _ = waitUntil { wireCollector.testFrames.count >= 2 }
                sleepNanoseconds(100_000_000)  // time for a wrongly looped-back copy to show
                pcap.stop()
                wire.stop()
                exchange.pcapSaw = pcapCollector.testFrames
                exchange.tapSaw = wireCollector.testFrames
                exchange.pcapCounters = pcap.counters
            }
            return exchange
        }
        #expect(digest(result.pcapSaw) == digest([toPcap]))
        #expect(digest(result.tapSaw) == digest([fromPcap, fromHost]))
        #expect(result.pcapCounters.transmitted == 1)
        #expect(result.pcapCounters.received >= 1)
    }
}
