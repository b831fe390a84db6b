/// The 82540EM's 64-word Microwire EEPROM: the MAC address, the IDs, init-control words and a checksum word
/// that makes words 0x00-0x3F sum to 0xBABA (Linux refuses the NIC otherwise). Read through EERD, or bit by
/// bit through EECD the way Linux's e1000 does on the 82540: raise CS, clock in the 3-bit READ opcode (110b,
/// start bit included) and a 6-bit word address on SK rising edges, then clock out 16 data bits, MSB first,
/// each presented on DO after a falling edge. Reading keeps going into the next words while CS stays high; a CS
/// rising edge starts over.
struct E1000EEPROM {
    static let wordCount = 64
    static let checksumWord = 0x3F
    static let checksumTarget: UInt16 = 0xBABA
    static let readOpcode: UInt32 = 0b110
    static let opcodeBits = 3
    static let addressBits = 6

    private(set) var words: [UInt16]

    // Microwire state.
    var lastEECD: UInt32 = 0
    var bitsIn = 0
    var valueIn: UInt32 = 0
    var reading = false
    /// Index of the bit DO presents: word << 4 | (15 - bit).
    var outputBit = 0

    init(mac: [UInt8], deviceID: UInt16, vendorID: UInt16, subsystemID: UInt16, subsystemVendorID: UInt16) {
        var words = [UInt16](repeating: 0, count: E1000EEPROM.wordCount)
        for i in 0..<3 { words[i] = UInt16(mac[2 * i]) | UInt16(mac[2 * i + 1]) << 8 }
        // Init-control, LED and PBA words as an 82540EM board carries them: word 0x0A (init control 1),
        // 0x0F (init control 2: full flow control), 0x14 (init control 3), 0x24 (port A init control 3).
        let template: [Int: UInt16] = [
            0x04: 0xFFFF, 0x08: 0x3000, 0x09: 0x1000, 0x0A: 0x6403,
            0x0B: subsystemID, 0x0C: subsystemVendorID, 0x0D: deviceID, 0x0E: vendorID, 0x0F: 0x3040,
            0x10: 0x0008, 0x11: 0x2000, 0x12: 0x7E14, 0x13: 0x0048, 0x14: 0x1000, 0x15: 0x00D8, 0x17: 0x2700,
            0x18: 0x6CC9, 0x19: 0x3150, 0x1A: 0x0722, 0x1B: 0x040B, 0x1C: 0x0984, 0x1E: 0xC000, 0x1F: 0x0706,
            0x20: 0x1008, 0x22: 0x0F04, 0x23: 0x7FFF, 0x24: 0x4D01, 0x30: 0x0100, 0x31: 0x4000, 0x32: 0x121C,
        ]
        for (index, value) in template { words[index] = value }
        for index in 0x25..<0x30 { words[index] = 0xFFFF }
        for index in 0x33..<E1000EEPROM.checksumWord { words[index] = 0xFFFF }
        let sum = words[0..<E1000EEPROM.checksumWord].reduce(UInt16(0), &+)
        words[E1000EEPROM.checksumWord] = E1000EEPROM.checksumTarget &- sum
        self.words = words
    }

    func word(_ index: Int) -> UInt16? {
        words.indices.contains(index) ? words[index] : nil
    }

    /// The EERD answer to a write of `value`: DONE with the word in bits 31:16 and the address in 15:8.
    func eerd(_ value: UInt32) -> UInt32 {
        guard value & E1000Bits.eerdStart != 0 else { return value & ~E1000Bits.eerdDone }
        let address = Int((value >> 8) & 0xFF)
        let data = word(address).map { UInt32($0) << 16 } ?? 0
        return data | UInt32(address) << 8 | E1000Bits.eerdDone | E1000Bits.eerdStart
    }

    /// EECD as the driver reads it: its own bits, PRES and GNT always, DO from the shift register.
    var eecd: UInt32 {
        lastEECD & E1000Bits.eecdWritable | E1000Bits.eecdPresent | E1000Bits.eecdGrant | (dataOut ? E1000Bits.eecdDataOut : 0)
    }

    /// DO: the current data bit while reading, 1 (idle, pulled up) otherwise.
    var dataOut: Bool {
        guard reading else { return true }
        let word = words[(outputBit >> 4) % E1000EEPROM.wordCount]
        return (word >> (15 - UInt16(outputBit & 0xF))) & 1 != 0
    }

    /// A write to EECD: CS, SK and DI edges drive the Microwire state machine.
    mutating func writeEECD(_ value: UInt32) {
        let old = lastEECD
        lastEECD = value & E1000Bits.eecdWritable
        guard value & E1000Bits.eecdChipSelect != 0 else {
            // Deselected: the command ends and DO floats (reads 1).
            reading = false
            return
        }
        if old & E1000Bits.eecdChipSelect == 0 {
            // CS rising edge: a new command.
            bitsIn = 0
            valueIn = 0
            reading = false
            outputBit = 0
        }
        guard (old ^ value) & E1000Bits.eecdClock != 0 else { return }
        if value & E1000Bits.eecdClock == 0 {
            // Falling edge: the next output bit.
            if reading { outputBit = (outputBit + 1) % (E1000EEPROM.wordCount * 16) }
            return
        }
        // Rising edge: shift DI in.
        guard !reading else { return }
        valueIn = (valueIn << 1 | (value & E1000Bits.eecdDataIn != 0 ? 1 : 0)) & 0xFFFF
        bitsIn += 1
        if bitsIn == E1000EEPROM.opcodeBits + E1000EEPROM.addressBits {
            let opcode = valueIn >> UInt32(E1000EEPROM.addressBits)
            let address = Int(valueIn & ((1 << UInt32(E1000EEPROM.addressBits)) - 1))
            if opcode == E1000EEPROM.readOpcode {
                reading = true
                // The falling edge that ends this clock presents bit 15 of the word.
                outputBit = (address * 16 + E1000EEPROM.wordCount * 16 - 1) % (E1000EEPROM.wordCount * 16)
            }
        }
    }

    mutating func resetInterface() {
        lastEECD = 0
        bitsIn = 0
        valueIn = 0
        reading = false
        outputBit = 0
    }
}

/// The 82540EM's integrated PHY, a Marvell 88E1011 (ID 0x01410C20) at MDIO address 1, reached through MDIC.
/// The link is up at 1000 Mb/s full duplex with autonegotiation complete unless the host side says otherwise.
struct E1000PHY {
    static let address: UInt32 = 1

    // Registers (IEEE 802.3 clause 22, then Marvell-specific).
    static let control = 0x00
    static let status = 0x01
    static let id1 = 0x02
    static let id2 = 0x03
    static let autonegAdvertisement = 0x04
    static let linkPartnerAbility = 0x05
    static let autonegExpansion = 0x06
    static let gigabitControl = 0x09
    static let gigabitStatus = 0x0A
    static let extendedStatus = 0x0F
    static let m88SpecificControl = 0x10
    static let m88SpecificStatus = 0x11
    static let m88ExtendedControl = 0x14
    static let m88ReceiveErrors = 0x15

    static let controlReset: UInt16 = 0x8000
    static let controlRestartAutoneg: UInt16 = 0x0200
    static let statusLinkUp: UInt16 = 0x0004
    static let statusAutonegComplete: UInt16 = 0x0020
    static let m88StatusLink: UInt16 = 0x0400

    static let defaults: [Int: UInt16] = [
        control: 0x1140,                       // 1000 Mb/s, full duplex, autonegotiation on
        status: 0x796D,                        // 10/100 capable, extended status, link up, autoneg complete
        id1: 0x0141, id2: 0x0C20,
        autonegAdvertisement: 0x0DE1,
        linkPartnerAbility: 0x41E0,            // partner: 10/100 full/half, acknowledged
        autonegExpansion: 0x0001,
        gigabitControl: 0x0E00,
        gigabitStatus: 0x3C00,                 // local and remote receiver OK, partner 1000 full/half
        extendedStatus: 0x3000,                // 1000BASE-T full/half capable
        m88SpecificControl: 0x0360,
        m88SpecificStatus: 0xAC00,             // 1000 Mb/s, full duplex, resolved, link
        m88ExtendedControl: 0x0D60,
    ]
    /// Registers the guest may write; every register reads (unknown ones as 0).
    static let writable: Set<Int> = [control, autonegAdvertisement, gigabitControl, m88SpecificControl, m88ExtendedControl,
                                     0x12, 0x16, 0x18, 0x19, 0x1A, 0x1D, 0x1E]

    var registers = [UInt16](repeating: 0, count: 32)
    var linkUp = true

    init() { reset() }

    mutating func reset() {
        registers = [UInt16](repeating: 0, count: 32)
        for (register, value) in E1000PHY.defaults { registers[register] = value }
        setLink(up: linkUp)
    }

    mutating func setLink(up: Bool) {
        linkUp = up
        if up {
            registers[E1000PHY.status] |= E1000PHY.statusLinkUp | E1000PHY.statusAutonegComplete
            registers[E1000PHY.m88SpecificStatus] |= E1000PHY.m88StatusLink
        } else {
            registers[E1000PHY.status] &= ~(E1000PHY.statusLinkUp | E1000PHY.statusAutonegComplete)
            registers[E1000PHY.m88SpecificStatus] &= ~E1000PHY.m88StatusLink
        }
    }

    func read(_ register: Int) -> UInt16 {
        registers.indices.contains(register) ? registers[register] : 0
    }

    /// Writes a register. Reset and autonegotiation restart complete at once (the bits self-clear); the link
    /// stays as the host side has it.
    mutating func write(_ register: Int, _ value: UInt16) {
        guard E1000PHY.writable.contains(register) else { return }
        if register == E1000PHY.control {
            if value & E1000PHY.controlReset != 0 {
                let advertisement = registers[E1000PHY.autonegAdvertisement], gigabit = registers[E1000PHY.gigabitControl]
                reset()
                registers[E1000PHY.autonegAdvertisement] = advertisement
                registers[E1000PHY.gigabitControl] = gigabit
            }
            registers[register] = value & ~(E1000PHY.controlReset | E1000PHY.controlRestartAutoneg)
            return
        }
        registers[register] = value
    }
}
