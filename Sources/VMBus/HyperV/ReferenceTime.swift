// Hyper-V timekeeping for a guest that sees Hyper-V instead of KVM and so has no kvmclock: the partition
// reference counter (100 ns units), the reference TSC page that lets the guest compute it from RDTSC without
// an exit, and the TSC and local-APIC frequencies (vmbus-protocol.md §1.2; Linux drivers/clocksource/hyperv_timer.c).

/// reference time = (guest TSC × scale) >> 64 + offset, with the guest's TSC starting near 0 when its vCPUs
/// are created, so the reference counter counts from partition creation.
public struct ReferenceTime: Sendable, Equatable {
    public let tscHz: UInt64
    /// 2^64 × 10^7 / tscHz: the 64.64 fixed-point 100 ns units per TSC tick.
    public let scale: UInt64
    public let offset: Int64 = 0

    /// nil when the TSC is too slow to count 100 ns units (never on real hardware).
    public init?(tscHz: UInt64) {
        guard tscHz > 10_000_000 else { return nil }
        self.tscHz = tscHz
        scale = tscHz.dividingFullWidth((high: 10_000_000, low: 0)).quotient
    }

    /// The reference counter at guest TSC `tsc`, as the guest computes it from the page.
    public func counter(atTSC tsc: UInt64) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: tsc.multipliedFullWidth(by: scale).high) &+ offset)
    }

    /// struct ms_hyperv_tsc_page's first 24 bytes: tsc_sequence (u32, nonzero = valid), reserved, tsc_scale,
    /// tsc_offset. The rest of the page is zero.
    public func pageHeader(sequence: UInt32) -> [UInt8] {
        var wire = WireWriter(capacity: 24)
        wire.u32(sequence)
        wire.u32(0)
        wire.u64(scale)
        wire.u64(UInt64(bitPattern: offset))
        return wire.bytes
    }

    /// KVM's local APIC timer counts at 1 GHz (APIC_BUS_CYCLE_NS = 1 in arch/x86/kvm/lapic.h).
    public static let apicHz: UInt64 = 1_000_000_000
}
