import Glibc

/// Runs a program to completion with a time limit and gives back its status and output.
public struct ProcessResult: CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut: Bool
    public var description: String { "status \(status)\(timedOut ? " (killed: test time limit)" : "")\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

public func runProcess(_ arguments: [String], stdin: String = "", environment: [String: String] = [:],
                       timeLimit: Double = 60, afterStart: ((pid_t) -> Void)? = nil) -> ProcessResult {
    var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
    precondition(pipe(&inPipe) == 0 && pipe(&outPipe) == 0 && pipe(&errPipe) == 0)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    for fd in inPipe + outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
    var env = environment
    var index = 0
    while let entry = environ[index] {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "="), env[String(text[..<eq])] == nil { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        index += 1
    }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    // Start the child as a shell would: no blocked signals, default dispositions.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var noSignals = sigset_t(), allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid = pid_t()
    let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
    posix_spawn_file_actions_destroy(&actions)
    posix_spawnattr_destroy(&attributes)
    close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
    guard spawned == 0 else {
        close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
        return ProcessResult(status: -1, stdout: "", stderr: "cannot start \(arguments[0]): \(String(cString: strerror(spawned)))", timedOut: false)
    }
    afterStart?(pid)
    let input = Array(stdin.utf8)
    if !input.isEmpty { input.withUnsafeBytes { _ = write(inPipe[1], $0.baseAddress, $0.count) } }
    close(inPipe[1])

    var out: [UInt8] = [], err: [UInt8] = []
    var open = [outPipe[0], errPipe[0]]
    var start = timespec(); clock_gettime(CLOCK_MONOTONIC, &start)
    var timedOut = false
    while !open.isEmpty {
        var now = timespec(); clock_gettime(CLOCK_MONOTONIC, &now)
        let elapsed = Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
        if elapsed > timeLimit && !timedOut { timedOut = true; kill(pid, SIGKILL) }
        var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if poll(&fds, nfds_t(fds.count), 100) <= 0 { continue }
        for entry in fds where entry.revents != 0 {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
            if count <= 0 { close(entry.fd); open.removeAll { $0 == entry.fd }; continue }
            if entry.fd == outPipe[0] { out += buffer[0..<count] } else { err += buffer[0..<count] }
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return ProcessResult(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self), timedOut: timedOut)
}
