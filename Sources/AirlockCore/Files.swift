import Glibc

/// Reads at most `limit` bytes of a text file.
public func readTextFile(_ path: String, limit: Int) throws(AirlockError) -> String {
    String(decoding: try readFile(path, limit: limit), as: UTF8.self)
}

/// Reads at most `limit` bytes of a file.
public func readFile(_ path: String, limit: Int) throws(AirlockError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw AirlockError(String(cString: strerror(errno))) }
    defer { close(fd) }
    var data = [UInt8]()
    // No larger than the limit: a 4 KiB head read (tool resolution at every start) does not
    // allocate and zero 64 KiB.
    var buffer = [UInt8](repeating: 0, count: max(1, min(65536, limit)))
    while data.count < limit {
        let n = read(fd, &buffer, min(buffer.count, limit - data.count))
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw AirlockError(String(cString: strerror(errno))) }
        if n == 0 { break }
        data += buffer[0..<n]
    }
    return data
}

/// Writes a file atomically (temporary file, fsync, rename) with `mode`.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(AirlockError) {
    // Unique per call: two threads may write the same content-addressed file at once.
    let temporary = path + ".tmp-\(getpid())-\(RandomID.make(8))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw AirlockError("cannot write \(path): \(String(cString: strerror(errno)))") }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            close(fd)
            unlink(temporary)
            throw AirlockError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        offset += n
    }
    fsync(fd)
    close(fd)
    guard rename(temporary, path) == 0 else {
        unlink(temporary)
        throw AirlockError("cannot write \(path): \(String(cString: strerror(errno)))")
    }
}

/// Creates `path` and its missing parents (mode 0700 for the ones it creates).
public func ensureDirectory(_ path: String) throws(AirlockError) {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o700) != 0 && errno != EEXIST {
            throw AirlockError("cannot create \(current): \(String(cString: strerror(errno)))")
        }
    }
}

/// Writes to standard error unbuffered (no shared `FILE *`, which strict concurrency forbids).
public func writeStandardError(_ text: String) {
    text.withCString { _ = write(2, $0, strlen($0)) }
}

/// Writes to standard output unbuffered, likewise.
public func writeStandardOutput(_ text: String) {
    text.withCString { _ = write(1, $0, strlen($0)) }
}

/// `path` with the symlinks of its longest existing prefix resolved and the rest (what does not
/// exist yet) appended: where a file there is, or would be created. `path` must be absolute.
public func resolvedHostPath(_ path: String) -> String {
    var head = HostPath.normalize(path)
    var rest: [String] = []
    while true {
        if let real = realpath(head, nil) {
            defer { free(real) }
            return HostPath.normalize(([String(cString: real)] + rest.reversed()).joined(separator: "/"))
        }
        if head == "/" { return HostPath.normalize(path) }
        rest.append(String(head[head.index(after: head.lastIndex(of: "/")!)...]))
        head = HostPath.parent(of: head)
    }
}
