import Glibc

/// This process's environment, read from `environ` (Foundation's ProcessInfo is not linked
/// into the launcher: its start-up cost, docs/sandbox.md "Start-up cost").
public func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

/// This process's working directory ("/" when it cannot be read).
public func currentDirectoryPath() -> String {
    guard let cwd = getcwd(nil, 0) else { return "/" }
    defer { free(cwd) }
    return String(cString: cwd)
}
