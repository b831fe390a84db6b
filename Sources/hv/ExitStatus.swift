import Partition

/// hv's exit statuses. A guest that writes N to port 0x501 makes hv exit with N (0-255), so
/// these overlap guest values by necessity; they follow sysexits(3) and timeout(1) so that
/// scripts can tell them apart from common guest codes. The README lists them.
enum ExitStatus {
    static let usage: Int32 = 64          // bad command line (EX_USAGE)
    static let badImage: Int32 = 65       // image, initrd or cmdline cannot be booted (EX_DATAERR)
    static let unreadable: Int32 = 66     // image or initrd cannot be opened (EX_NOINPUT)
    static let noKVM: Int32 = 69          // /dev/kvm missing, not permitted, or lacking a capability (EX_UNAVAILABLE)
    static let hostFailure: Int32 = 71    // the host refused a resource (memory, threads) (EX_OSERR)
    static let reboot: Int32 = 120        // the guest asked for a reset and --reboot was not given
    static let guestCrash: Int32 = 121    // triple fault, failed entry or KVM internal error
    static let timeout: Int32 = 124       // --timeout ran out (as timeout(1))
    // SIGINT and SIGTERM: 128 + signal number (130, 143), as a shell reports them.

    static func forError(_ error: PartitionError) -> Int32 {
        switch error {
        case .kvm: noKVM
        case .host: hostFailure
        case .unreadable: unreadable
        case .image: badImage
        case .configuration: usage
        }
    }

    static func forStop(_ reason: StopReason) -> Int32 {
        switch reason {
        case .guestExit(let status): Int32(status)
        case .powerOff, .consoleQuit: 0
        case .reboot: reboot
        case .crash: guestCrash
        case .timeout: timeout
        case .signal(let number): 128 + number
        case .hostFailure: hostFailure
        }
    }
}
