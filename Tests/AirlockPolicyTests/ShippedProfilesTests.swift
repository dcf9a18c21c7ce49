import Glibc
import Testing

@testable import AirlockPolicy

/// Every profile shipped in profiles/ parses, and `default` is exactly Airlock's defaults.
@Suite struct ShippedProfilesTests {
    static let profilesDirectory: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/profiles"
    }()

    static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static var shipped: [String] {
        guard let dir = opendir(profilesDirectory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".yaml") { names.append(name) }
        }
        return names.sorted()
    }

    @Test func thereAreProfiles() {
        #expect(Self.shipped.contains("default.yaml"))
    }

    @Test(arguments: shipped)
    func parses(file: String) throws {
        let name = String(file.dropLast(5))
        let profile = try ProfileParser.parse(Self.read(Self.profilesDirectory + "/" + file), name: name, source: file)
        #expect(profile.name == name)
    }

    @Test func defaultIsTheDefaults() throws {
        let profile = try ProfileParser.parse(Self.read(Self.profilesDirectory + "/default.yaml"), name: "default", source: "default.yaml")
        #expect(Loosening.of(profile).isEmpty)
        #expect(profile.rlimits == SandboxDefaults.rlimits)
        #expect(profile.filesystem.tmpSize == SandboxDefaults.tmpSize)
        #expect(profile.filesystem.readOnly.isEmpty && profile.filesystem.readWrite.isEmpty)
    }
}
