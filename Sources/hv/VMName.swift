import Glibc

/// A running VM's name (`hv run --name`): a lock file that the running hv holds with an fcntl write lock for
/// its whole life, so `hv stop --name` finds its process (F_GETLK reports the holder's pid) and a stale file
/// from a VM that died is never mistaken for a running one.
struct VMName {
    let name: String
    let path: String

    /// $HV_RUNTIME_DIR, else $XDG_RUNTIME_DIR/hv, else /tmp/hv-UID.
    static var directory: String {
        if let dir = getenv("HV_RUNTIME_DIR") { return String(cString: dir) }
        if let dir = getenv("XDG_RUNTIME_DIR") { return String(cString: dir) + "/hv" }
        return "/tmp/hv-\(getuid())"
    }

    /// Names become file names: letters, digits, '.', '_' and '-', not starting with '.'.
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    init(_ name: String) {
        self.name = name
        path = VMName.directory + "/\(name).lock"
    }

    /// Takes the name for this process; the lock lasts until the process exits. Throws a message when another
    /// running hv has the name or the directory cannot be used.
    func claim() throws(VMNameError) {
        let directory = VMName.directory
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw VMNameError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VMNameError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) != 0 {
            let holder = VMName(name).runningPID().map { " (pid \($0))" } ?? ""
            close(fd)
            throw VMNameError("a VM named '\(name)' is already running\(holder)")
        }
        // Keep fd open (and so the lock) for the life of the process; the pid is for people reading the file.
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The pid of the hv running under this name, or nil when none is.
    func runningPID() -> pid_t? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &lock) == 0, lock.l_type != Int16(F_UNLCK) else { return nil }
        return lock.l_pid
    }
}

struct VMNameError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
