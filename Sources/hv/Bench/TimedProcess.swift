import Glibc

/// One timed run of a child process: when its first byte of stdout arrived and when it exited,
/// in seconds from just before posix_spawn.
struct TimedRun {
    var firstByte: Double?
    var exit: Double
    var status: Int32
    var output: [UInt8]
}

enum TimedProcess {
    /// Spawns `arguments` with stdin from /dev/null and stdout on a pipe, and times it.
    static func run(_ arguments: [String], timeLimit: Double = 120) throws -> TimedRun {
        var outPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, outPipe[0])
        posix_spawn_file_actions_addclose(&actions, outPipe[1])
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let start = now()
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(outPipe[1])
        guard spawned == 0 else {
            close(outPipe[0])
            throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        var firstByte: Double?
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fd = pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)
            if now() - start > timeLimit { kill(pid, SIGKILL) }
            guard poll(&fd, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            if firstByte == nil { firstByte = now() - start }
            output += buffer[0..<count]
        }
        close(outPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = now() - start
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return TimedRun(firstByte: firstByte, exit: exit, status: code, output: output)
    }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes a bench's JSON or chart.
func writeBenchFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
    fputs(text, file)
    fclose(file)
}

/// "64, 512,1514" → [64, 512, 1514]; nil if any item is not a number.
func parseIntegerList(_ text: String) -> [Int]? {
    let values = text.split(separator: ",").map { Int(String($0.filter { $0 != " " })) }
    return values.contains(nil) ? nil : values.compactMap { $0 }
}

/// The number after "name=" in the first line of `text` that starts with `prefix` (the guest stub's result lines
/// are "key=value" words).
func benchField(_ name: String, in text: String, line prefix: String) -> Double? {
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
    return line.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Double($0.dropFirst(name.count + 1)) }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
