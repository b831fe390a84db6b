/// Register offsets and bits of the Intel 82540EM that hv models (shared/reference/e1000.md; offsets as in
/// Linux's e1000_hw.h).
enum E1000Register {
    static let ctrl = 0x0000
    static let status = 0x0008
    static let eecd = 0x0010
    static let eerd = 0x0014
    static let ctrlExt = 0x0018
    static let mdic = 0x0020
    static let vet = 0x0038
    static let icr = 0x00C0
    static let itr = 0x00C4
    static let ics = 0x00C8
    static let ims = 0x00D0
    static let imc = 0x00D8
    static let rctl = 0x0100
    static let tctl = 0x0400
    static let tipg = 0x0410
    static let ledctl = 0x0E00
    static let pba = 0x1000
    static let rdbal = 0x2800
    static let rdbah = 0x2804
    static let rdlen = 0x2808
    static let rdh = 0x2810
    static let rdt = 0x2818
    static let rdtr = 0x2820
    static let radv = 0x282C
    static let tdbal = 0x3800
    static let tdbah = 0x3804
    static let tdlen = 0x3808
    static let tdh = 0x3810
    static let tdt = 0x3818
    static let tidv = 0x3820
    static let tadv = 0x382C
    static let rxcsum = 0x5000
    static let mta = 0x5200          // 128 dwords
    static let ra = 0x5400           // 16 pairs of RAL/RAH
    static let vfta = 0x5600         // 128 dwords
    static let manc = 0x5820

    /// Statistics: clear on read, saturating; 0x4000-0x4124.
    static let statistics = 0x4000...0x4127
    static let crcerrs = 0x4000
    static let mpc = 0x4010
    static let prc64 = 0x405C
    static let gprc = 0x4074
    static let bprc = 0x4078
    static let mprc = 0x407C
    static let gptc = 0x4080
    static let gorcl = 0x4088
    static let gorch = 0x408C
    static let gotcl = 0x4090
    static let gotch = 0x4094
    static let rnbc = 0x40A0
    static let ruc = 0x40A4
    static let roc = 0x40AC
    static let torl = 0x40C0
    static let torh = 0x40C4
    static let totl = 0x40C8
    static let toth = 0x40CC
    static let tpr = 0x40D0
    static let tpt = 0x40D4
    static let ptc64 = 0x40D8
    static let mptc = 0x40F0
    static let bptc = 0x40F4
    static let tsctc = 0x40F8
    static let tsctfc = 0x40FC
    /// The 64-bit counters as (low, high) pairs: reading the high half clears both.
    static let octetCounters: [(low: Int, high: Int)] = [(gorcl, gorch), (gotcl, gotch), (torl, torh), (totl, toth)]
}

enum E1000Bits {
    // CTRL
    static let ctrlSetLinkUp: UInt32 = 0x40
    static let ctrlReset: UInt32 = 0x0400_0000
    static let ctrlVLANEnable: UInt32 = 0x4000_0000
    static let ctrlPHYReset: UInt32 = 0x8000_0000
    /// SWDPIN2 | SWDPIN0 | SPD_1000 | SLU.
    static let ctrlDefault: UInt32 = 0x0014_0240

    // STATUS: full duplex, link up, 1000 Mb/s, ASDV, MTXCKOK (a 32-bit 33 MHz PCI function).
    static let statusFullDuplex: UInt32 = 0x1
    static let statusLinkUp: UInt32 = 0x2
    static let statusDefault: UInt32 = 0x0000_0783

    // EECD
    static let eecdClock: UInt32 = 0x1          // SK
    static let eecdChipSelect: UInt32 = 0x2     // CS
    static let eecdDataIn: UInt32 = 0x4         // DI (host → EEPROM)
    static let eecdDataOut: UInt32 = 0x8        // DO (EEPROM → host)
    static let eecdRequest: UInt32 = 0x40
    static let eecdGrant: UInt32 = 0x80
    static let eecdPresent: UInt32 = 0x100
    /// The bits the driver writes and reads back: SK, CS, DI, FWE, REQ.
    static let eecdWritable: UInt32 = 0x7F & ~0x8

    // EERD (8254x layout)
    static let eerdStart: UInt32 = 0x1
    static let eerdDone: UInt32 = 0x10

    // MDIC
    static let mdicOpWrite: UInt32 = 0x0400_0000
    static let mdicOpRead: UInt32 = 0x0800_0000
    static let mdicReady: UInt32 = 0x1000_0000
    static let mdicInterruptEnable: UInt32 = 0x2000_0000
    static let mdicError: UInt32 = 0x4000_0000

    // Interrupt causes (ICR, ICS, IMS, IMC)
    static let txdw: UInt32 = 0x01
    static let txqe: UInt32 = 0x02
    static let lsc: UInt32 = 0x04
    static let rxseq: UInt32 = 0x08
    static let rxdmt0: UInt32 = 0x10
    static let rxo: UInt32 = 0x40
    static let rxt0: UInt32 = 0x80
    static let mdac: UInt32 = 0x200

    // RCTL
    static let rctlEnable: UInt32 = 0x2
    static let rctlStoreBadPackets: UInt32 = 0x4
    static let rctlUnicastPromiscuous: UInt32 = 0x8
    static let rctlMulticastPromiscuous: UInt32 = 0x10
    static let rctlLongPackets: UInt32 = 0x20
    static let rctlBroadcastAccept: UInt32 = 0x8000
    static let rctlVLANFilter: UInt32 = 0x4_0000
    static let rctlSizeExtension: UInt32 = 0x0200_0000
    static let rctlStripCRC: UInt32 = 0x0400_0000

    // TCTL
    static let tctlEnable: UInt32 = 0x2
    static let tctlPadShortPackets: UInt32 = 0x8

    // RXCSUM
    static let rxcsumIPOffload: UInt32 = 0x100
    static let rxcsumTCPUDPOffload: UInt32 = 0x200

    // RAH
    static let rahAddressValid: UInt32 = 0x8000_0000

    // TX descriptor command bits (legacy CMD and extended DCMD / TUCMD share these positions).
    static let txEOP: UInt8 = 0x01
    static let txInsertChecksum: UInt8 = 0x04      // legacy IC
    static let txTSE: UInt8 = 0x04                 // data descriptor DCMD.TSE, context TUCMD.TSE
    static let txReportStatus: UInt8 = 0x08
    static let txReportPacketSent: UInt8 = 0x10    // legacy RPS
    static let txExtension: UInt8 = 0x20
    static let txVLAN: UInt8 = 0x40
    // Context TUCMD
    static let tucmdTCP: UInt8 = 0x01
    static let tucmdIPv4: UInt8 = 0x02
    // Data POPTS
    static let poptsIPChecksum: UInt8 = 0x01
    static let poptsL4Checksum: UInt8 = 0x02
    static let txDescriptorDone: UInt8 = 0x01

    // RX descriptor status and errors
    static let rxDone: UInt8 = 0x01
    static let rxEndOfPacket: UInt8 = 0x02
    static let rxIgnoreChecksum: UInt8 = 0x04
    static let rxVLANStripped: UInt8 = 0x08
    static let rxTCPChecksummed: UInt8 = 0x20
    static let rxIPChecksummed: UInt8 = 0x40
    static let rxErrorTCP: UInt8 = 0x20
    static let rxErrorIP: UInt8 = 0x40
    static let rxErrorData: UInt8 = 0x80
}
