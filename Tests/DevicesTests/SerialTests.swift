import Synchronization
import Testing
@testable import Devices
@testable import Partition

final class CapturedOutput: SerialOutput {
    let bytes = Mutex<[UInt8]>([])
    func transmit(_ byte: UInt8) { bytes.withLock { $0.append(byte) } }
}

final class IRQProbe: Sendable {
    let levels = Mutex<[Bool]>([])
    var current: Bool { levels.withLock { $0.last ?? false } }
}

@Suite struct Serial16550Tests {
    let output = CapturedOutput()
    let irq = IRQProbe()
    var uart: Serial16550 { Serial16550(output: output) { [irq] level in irq.levels.withLock { $0.append(level) } } }
    let base: UInt16 = 0x3F8

    @Test func transmitsAndReportsAnEmptyTransmitter() {
        let uart = self.uart
        for byte in Array("ok\n".utf8) { uart.portWrite(base, size: 1, value: UInt32(byte)) }
        #expect(output.bytes.withLock { $0 } == Array("ok\n".utf8))
        #expect(uart.portRead(base + 5, size: 1) & 0x60 == 0x60)
    }

    @Test func divisorLatchAndScratch() {
        let uart = self.uart
        uart.portWrite(base + 3, size: 1, value: 0x83)
        uart.portWrite(base, size: 1, value: 0x01)
        uart.portWrite(base + 1, size: 1, value: 0x00)
        #expect(uart.portRead(base, size: 1) == 0x01)
        uart.portWrite(base + 3, size: 1, value: 0x03)
        #expect(output.bytes.withLock { $0.isEmpty }) // divisor writes are not data
        uart.portWrite(base + 7, size: 1, value: 0x5A)
        #expect(uart.portRead(base + 7, size: 1) == 0x5A)
    }

    @Test func receivedDataRaisesIRQWithOut2() {
        let uart = self.uart
        uart.portWrite(base + 1, size: 1, value: 0x01) // receive interrupt on
        uart.receive([0x41])
        #expect(!irq.current)                          // OUT2 gates the line
        uart.portWrite(base + 4, size: 1, value: 0x08)
        #expect(irq.current)
        #expect(uart.portRead(base + 2, size: 1) & 0x0F == 0x04)
        #expect(uart.portRead(base + 5, size: 1) & 0x01 == 0x01)
        #expect(uart.portRead(base, size: 1) == 0x41)
        #expect(!irq.current)
        #expect(uart.portRead(base + 2, size: 1) & 0x01 == 0x01)
    }

    @Test func enablingTHREInterruptFiresUntilIIRRead() {
        let uart = self.uart
        uart.portWrite(base + 4, size: 1, value: 0x08)
        uart.portWrite(base + 1, size: 1, value: 0x02)
        #expect(irq.current)
        #expect(uart.portRead(base + 2, size: 1) & 0x0F == 0x02)
        #expect(!irq.current)
        uart.portWrite(base, size: 1, value: 0x42)     // THR empties again at once
        #expect(irq.current)
    }

    @Test func loopbackMirrorsModemControl() {
        let uart = self.uart
        uart.portWrite(base + 4, size: 1, value: 0x1F)
        #expect(uart.portRead(base + 6, size: 1) & 0xF0 == 0xF0)
        uart.portWrite(base, size: 1, value: 0x99)
        #expect(output.bytes.withLock { $0.isEmpty })
        #expect(uart.portRead(base, size: 1) == 0x99)
        uart.portWrite(base + 4, size: 1, value: 0x10)
        #expect(uart.portRead(base + 6, size: 1) & 0xF0 == 0x00)
    }

    @Test func overrunIsCountedAndReported() {
        let uart = self.uart
        uart.receive([UInt8](repeating: 0x61, count: Serial16550.receiveCapacity + 3))
        #expect(uart.overrunCount == 3)
        #expect(uart.portRead(base + 5, size: 1) & 0x02 == 0x02)
        #expect(uart.portRead(base + 5, size: 1) & 0x02 == 0)
    }
}
