import Foundation
import Glibc

/// Files for snapshot tests: a fresh directory per test, files written with their parents.
protocol FileFixtures {}

extension FileFixtures {
    func directory(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "airlock-\(Self.self)-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode_t(mode))
    }
}
