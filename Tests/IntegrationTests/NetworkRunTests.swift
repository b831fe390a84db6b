import Glibc
import Testing
import TestSupport

/// Both NICs end to end on this host's KVM (tier 1): `ping -c 20` from the host side of a tap to the guest stub's
/// ARP/ICMP responder, in a network namespace the test makes (the tap and its addresses exist only there; no
/// traffic reaches the host's networks), with every frame captured to a pcap file.
@Suite(.enabled(if: Artifacts.ready && fileExists(Artifacts.netStub) && Artifacts.canMakeNamespaces,
                "needs /dev/kvm, hv, Guests/build/net.elf, root, unshare, ip and ping"), .serialized)
struct NetworkRunTests {
    static let stub = Artifacts.netStub

    /// Starts hv with the responder behind `nic`, gives the tap the host address, pings, stops hv.
    func pingThrough(nic: String, driver: String) throws -> (ping: String, hv: ProcessResult, capture: [[UInt8]]) {
        let capture = temporaryFile(named: "ping-\(driver).pcap", contents: [])
        let serial = temporaryFile(named: "ping-\(driver).serial", contents: [])
        let script = """
            set -u
            ip link set lo up
            '\(Artifacts.hv)' run '\(Self.stub)' --nic \(nic),net=tap:hvtest0,mac=52:54:00:aa:bb:01 --capture '\(capture)' \
                --serial 'file:\(serial)' --cmdline 'nic=\(driver) mode=responder ip=10.77.0.2 count=20' --timeout 60 &
            hv=$!
            for i in $(seq 100); do ip link show hvtest0 >/dev/null 2>&1 && break; sleep 0.1; done
            ip addr add 10.77.0.1/24 dev hvtest0 && ip link set hvtest0 up
            ping -c 20 -i 0.05 -W 5 10.77.0.2
            echo "ping-status $?"
            wait $hv
            echo "hv-status $?"
            cat '\(serial)'
            """
        let result = runProcess(["/usr/bin/unshare", "--net", "/bin/sh", "-c", script], timeLimit: 120)
        return (result.stdout, result, try PcapFile.frames(capture))
    }

    @Test(arguments: [("synthetic", "netvsc"), ("emulated", "e1000")])
    func pingOverTapWithoutLoss(nic: String, driver: String) throws {
        let (output, result, frames) = try pingThrough(nic: nic, driver: driver)
        #expect(output.contains("20 packets transmitted, 20 received, 0% packet loss"), "\(result)")
        #expect(output.contains("ping-status 0") && output.contains("hv-status 0"), "\(result)")
        #expect(output.contains("net: responder done pings=20"), "\(result)")
        // The capture holds the host's 20 echo requests and the guest's 20 replies (and the ARP exchange).
        let icmp = frames.compactMap(PcapFile.icmpType)
        #expect(icmp.filter { $0 == 8 }.count == 20 && icmp.filter { $0 == 0 }.count == 20, "ICMP types captured: \(icmp)")
        #expect(frames.contains { $0.count >= 14 && $0[12] == 0x08 && $0[13] == 0x06 }, "an ARP frame was captured")
    }

    /// Host configuration errors refuse to start with one clear line and status 64.
    @Test func badBackEndsAreRefused() {
        let missing = runProcess([Artifacts.hv, "run", Artifacts.hello, "--nic", "emulated,net=pcap:hv-no-such-if0"])
        #expect(missing.status == 64 && missing.stderr.contains("no such interface"), "\(missing)")
        let unwritable = runProcess([Artifacts.hv, "run", Artifacts.hello, "--nic", "synthetic,net=null", "--capture", "/nonexistent/x.pcap"])
        #expect(unwritable.status == 64 && unwritable.stderr.contains("cannot write /nonexistent/x.pcap"), "\(unwritable)")
        let syntax = runProcess([Artifacts.hv, "run", Artifacts.hello, "--nic", "virtio,net=null"])
        #expect(syntax.status == 64 && syntax.stderr.contains("synthetic or emulated"), "\(syntax)")
        let mac = runProcess([Artifacts.hv, "run", Artifacts.hello, "--nic", "emulated,net=null,mac=01:00:5e:00:00:01"])
        #expect(mac.status == 64 && mac.stderr.contains("unicast MAC"), "\(mac)")
        let noBus = runProcess([Artifacts.hv, "run", Artifacts.hello, "--no-vmbus", "--nic", "synthetic,net=null"])
        #expect(noBus.status == 64 && noBus.stderr.contains("needs VMBus"), "\(noBus)")
    }

    /// Several NICs of both kinds in one VM: hello.elf ignores them, the VM still boots and exits cleanly.
    @Test func severalNICs() {
        let result = runProcess([Artifacts.hv, "run", Artifacts.hello, "--nic", "synthetic,net=null", "--nic", "synthetic,net=null",
                                 "--nic", "emulated,net=null", "--nic", "emulated,net=null:rx=60,count=10", "--timeout", "30"])
        #expect(result.status == 0 && result.stdout == RunTests.helloLines(1), "\(result)")
    }
}

/// Just enough of the classic pcap format to read a capture back: the file is what tshark and Wireshark read.
enum PcapFile {
    static func frames(_ path: String) throws -> [[UInt8]] {
        let bytes = try readAll(path)
        guard bytes.count >= 24, Array(bytes[0..<4]) == [0xD4, 0xC3, 0xB2, 0xA1] else { return [] }
        #expect(u32(bytes, 20) == 1, "link type Ethernet")
        var frames: [[UInt8]] = []
        var offset = 24
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset + 8))
            guard offset + 16 + length <= bytes.count else { break }
            frames.append(Array(bytes[(offset + 16)..<(offset + 16 + length)]))
            offset += 16 + length
        }
        return frames
    }

    /// The ICMP type of an IPv4 ICMP frame, or nil.
    static func icmpType(_ frame: [UInt8]) -> UInt8? {
        guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00, frame[23] == 1 else { return nil }
        let headerLength = Int(frame[14] & 0x0F) * 4
        return frame.count > 14 + headerLength ? frame[14 + headerLength] : nil
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }
}
