// The values the channel server (ChannelServer.swift) takes from and hands to the shell around it.

/// What the server offers for one device.
public struct ChannelOfferSpec: Sendable, Equatable {
    /// Device class; Linux binds its driver by this (GUID.network, GUID.scsi, GUID.heartbeat …).
    public var interfaceType: GUID
    /// Unique per device.
    public var interfaceInstance: GUID
    public var flags: ChannelOfferFlags
    /// The offer's user_defined bytes: at most 120, zero-padded in the offer (longer is cut).
    public var userDefined: [UInt8]

    public init(interfaceType: GUID, interfaceInstance: GUID, flags: ChannelOfferFlags = [], userDefined: [UInt8] = []) {
        self.interfaceType = interfaceType
        self.interfaceInstance = interfaceInstance
        self.flags = flags
        self.userDefined = userDefined
    }
}

/// A channel open the guest asked for and the server checked: the shell maps the rings, starts the device and
/// answers with `ChannelServer.openCompleted`.
public struct ChannelOpenRequest: Sendable, Equatable {
    public var childRelID: UInt32
    /// Echoed in OPENCHANNEL_RESULT (Linux sets it to the relid).
    public var openID: UInt32
    /// The offer's connection id: the guest signals it with HvSignalEvent.
    public var connectionID: UInt32
    /// Guest page numbers (PFNs) of the ring GPADL, in order. Page 0 is the control page of the guest → host
    /// (outbound, "upstream") ring. Every one passed the server's `isGuestPage` check.
    public var ringPages: [UInt64]
    /// First page of the host → guest (inbound) ring within `ringPages`. Both rings have at least two pages
    /// (a control page and a data page): 2 ≤ downstreamPageOffset ≤ ringPages.count − 2.
    public var downstreamPageOffset: UInt32
    /// VP index that receives this channel's host → guest events. Guest-chosen and not checked against the
    /// VP count here: the shell must.
    public var targetVP: UInt32
    /// OPENCHANNEL's 120 user-data bytes (hv_sock and pipe-mode devices use them).
    public var userData: [UInt8]

    public init(
        childRelID: UInt32, openID: UInt32, connectionID: UInt32, ringPages: [UInt64], downstreamPageOffset: UInt32,
        targetVP: UInt32, userData: [UInt8]
    ) {
        self.childRelID = childRelID
        self.openID = openID
        self.connectionID = connectionID
        self.ringPages = ringPages
        self.downstreamPageOffset = downstreamPageOffset
        self.targetVP = targetVP
        self.userData = userData
    }

    /// The guest → host ring's pages (hv reads it): control page first.
    public var outboundRingPages: ArraySlice<UInt64> { ringPages.prefix(Int(downstreamPageOffset)) }
    /// The host → guest ring's pages (hv writes it): control page first.
    public var inboundRingPages: ArraySlice<UInt64> { ringPages.dropFirst(Int(downstreamPageOffset)) }
}

/// What the shell must do after feeding the server one input. Actions come in order and must be carried out in
/// that order: a `.close` before a GPADL_TORNDOWN that follows it, a `.retarget` before the MODIFYCHANNEL_RESPONSE
/// that acknowledges it.
public enum ChannelServerAction: Sendable, Equatable {
    /// Deliver to the guest, in order, on `messageSINT` of VP `messageTargetVP`.
    case send(ChannelMessage)
    /// The shell maps the rings and starts the device, then calls `openCompleted`.
    case open(ChannelOpenRequest)
    /// The shell stops the device and unmaps the rings. Only ever follows an open that completed with status 0.
    case close(childRelID: UInt32)
    /// Deliver this open channel's events to another VP from now on.
    case retarget(childRelID: UInt32, targetVP: UInt32)
    /// Unload done: every channel closed, every GPADL gone.
    case disconnected
    /// Hostile or out-of-state input: the shell logs it rate-limited and counts it.
    case rejected(String)
}
