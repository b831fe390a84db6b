import Devices
import Logging
import NetworkBackends
import Partition
import VMBus
import VSP

/// The NICs of one partition: each `--nic` with its back end, the synthetic ones as VMBus devices for VMBusHost
/// to offer, the emulated ones plugged into a PCI bus (made only when there is one) and running.
struct NetworkAdapters {
    var vmbusDevices: [any VMBusDevice] = []
    var emulated: [E1000] = []
    /// The partition's platform with the PCI bus added, for the firmware tables.
    var platform: PlatformDescription

    init(options: [NICOption], partition: Partition, recorder: CaptureRecorder?, logger: Logger) throws(PartitionError) {
        platform = partition.platform
        var bus: PCIBus?
        do {
            for (index, option) in options.enumerated() {
                let backend = try option.backend.makeBackend(capture: recorder)
                let mac = option.mac ?? NICOption.defaultMAC(index: index)
                switch option.kind {
                case .synthetic:
                    vmbusDevices.append(NetVSPDevice(mac: mac, backend: backend, logger: logger))
                case .emulated:
                    let pci = bus ?? PCIBus.attach(to: partition)
                    bus = pci
                    let nic = try E1000(mac: mac, backend: backend, memory: partition.memory, logger: logger,
                                       transmitInBackground: true)
                    try pci.plug(nic)
                    try nic.start()
                    emulated.append(nic)
                }
                logger.info("nic \(index): \(option.kind.rawValue), \(backend.name), mac \(mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":"))")
            }
        } catch let error as NetworkBackendError {
            stop()
            throw .configuration(error.description)
        } catch let error as PartitionError {
            stop()
            throw error
        } catch {
            stop()
            throw .configuration("\(error)")
        }
        if let bus { platform.pci = bus.firmwareDescription }
    }

    /// Stops the emulated NICs' back ends (the synthetic ones stop with their channels).
    func stop() {
        for nic in emulated { nic.stop() }
    }
}
