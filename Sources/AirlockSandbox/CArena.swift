import Glibc

/// Owns the C memory handed to the clone child (strings, arrays). The child gets a copy of
/// the address space at clone time, so this only has to live until `al_spawn` returns.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    func string(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        blocks.append(UnsafeMutableRawPointer(copy))
        return UnsafePointer(copy)
    }

    /// Bytes that may contain NULs (file contents), NUL-terminated for good measure.
    func bytes(_ text: String) -> (UnsafePointer<CChar>, Int) {
        let utf8 = Array(text.utf8)
        let raw = malloc(utf8.count + 1)!
        blocks.append(raw)
        let buffer = raw.bindMemory(to: CChar.self, capacity: utf8.count + 1)
        for (index, byte) in utf8.enumerated() { buffer[index] = CChar(bitPattern: byte) }
        buffer[utf8.count] = 0
        return (UnsafePointer(buffer), utf8.count)
    }

    func array<T>(_ items: [T]) -> UnsafeMutablePointer<T> {
        let raw = malloc(MemoryLayout<T>.stride * max(items.count, 1))!
        blocks.append(raw)
        let buffer = raw.bindMemory(to: T.self, capacity: max(items.count, 1))
        buffer.initialize(from: items, count: items.count)
        return buffer
    }

    /// A NULL-terminated array of C strings (argv, envp).
    func stringArray(_ items: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        array(items.map { Optional(string($0)) } + [nil])
    }

    deinit {
        for block in blocks { free(block) }
    }
}
