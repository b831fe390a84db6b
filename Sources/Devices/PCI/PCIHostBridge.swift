/// Device 0 on bus 0: the host bridge (an i440FX-style 8086:1237, class 0x060000). It has no BARs and no
/// interrupt; it is there because operating systems look for a host bridge before they trust a
/// configuration mechanism (Linux's pci_sanity_check wants a host bridge, a VGA device or an Intel or
/// Compaq function on bus 0).
public final class PCIHostBridge: PCIDevice {
    public static let identity = PCIIdentity(vendorID: 0x8086, deviceID: 0x1237, revision: 0x02, classCode: 0x06_00_00)

    public let config = PCIConfigSpace(identity: PCIHostBridge.identity)

    public init() {}

    public func barRead(_ bar: Int, offset: UInt64, size: Int) -> UInt64 { 0 }
    public func barWrite(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {}
}
