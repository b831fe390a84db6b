import CKVM
import Glibc
import Partition
import Synchronization

/// Writes a UART's output to a file descriptor (stdout or a log file), byte by byte as the
/// guest sends it, so an interactive console echoes at once.
public final class FileSerialOutput: SerialOutput {
    let fd: Int32
    let ownsFD: Bool

    public init(fd: Int32, ownsFD: Bool = false) {
        self.fd = fd
        self.ownsFD = ownsFD
    }

    /// Opens (creates or truncates) `path` for the guest's serial output.
    public convenience init(path: String) throws(PartitionError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .hostErrno("open serial output file '\(path)'") }
        self.init(fd: fd, ownsFD: true)
    }

    deinit { if ownsFD { close(fd) } }

    public func transmit(_ byte: UInt8) {
        var byte = byte
        while write(fd, &byte, 1) < 0 && errno == EINTR {}
    }
}

/// Feeds host stdin to the guest's UART. With a terminal, stdin goes to raw mode (restored on
/// `stop`) so keys reach the guest as typed; Ctrl-A x quits hv, Ctrl-A Ctrl-A sends Ctrl-A.
public final class SerialConsole: Sendable {
    public static let escapeKey: UInt8 = 0x01 // Ctrl-A
    public static let quitKey: UInt8 = UInt8(ascii: "x")

    let uart: Serial16550
    let control: PartitionControl
    let inputFD: Int32
    let stopFD: Int32
    let savedTerminal: Mutex<termios?>
    let thread = Mutex<pthread_t?>(nil)

    public init(uart: Serial16550, control: PartitionControl, inputFD: Int32 = STDIN_FILENO) throws(PartitionError) {
        self.uart = uart
        self.control = control
        self.inputFD = inputFD
        let fd = ckvm_eventfd()
        guard fd >= 0 else { throw .hostErrno("eventfd for the console") }
        stopFD = fd
        var saved: termios?
        if isatty(inputFD) != 0 {
            var original = termios()
            if tcgetattr(inputFD, &original) == 0 {
                var raw = original
                cfmakeraw(&raw)
                raw.c_oflag = original.c_oflag // keep output processing: guest "\n" still starts a new line
                if tcsetattr(inputFD, TCSANOW, &raw) == 0 { saved = original }
            }
        }
        savedTerminal = Mutex(saved)
    }

    deinit { close(stopFD) }

    public var isRaw: Bool { savedTerminal.withLock { $0 != nil } }

    /// Starts the thread that reads stdin until EOF or `stop`.
    public func start() throws(PartitionError) {
        let started = try Partition.startThread { [self] in pump() }
        thread.withLock { $0 = started }
    }

    /// Ends the reader thread and gives the terminal back its settings.
    public func stop() {
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
        if let running = thread.withLock({ $0.take() }) { pthread_join(running, nil) }
        savedTerminal.withLock { saved in
            if var original = saved { tcsetattr(inputFD, TCSANOW, &original) }
            saved = nil
        }
    }

    func pump() {
        var escaped = false
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            var fds = [pollfd(fd: inputFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 || fds[1].revents != 0 { return }
            let count = buffer.withUnsafeMutableBytes { read(inputFD, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return } // EOF: the guest simply gets no more input
            var forward: [UInt8] = []
            for byte in buffer[0..<count] {
                if isRaw && escaped {
                    escaped = false
                    if byte == SerialConsole.quitKey { control.requestStop(.consoleQuit); return }
                    forward.append(byte) // Ctrl-A Ctrl-A, or Ctrl-A then anything else: pass it on
                } else if isRaw && byte == SerialConsole.escapeKey {
                    escaped = true
                } else {
                    forward.append(byte)
                }
            }
            if !forward.isEmpty { uart.receive(forward) }
        }
    }
}
