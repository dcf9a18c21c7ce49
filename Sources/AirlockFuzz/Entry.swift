import Glibc

// Built by scripts/fuzz with -sanitize=fuzzer (and -DAIRLOCK_LIBFUZZER): libFuzzer supplies
// main and calls this for every input; AIRLOCK_FUZZ_TARGET picks the target.
#if AIRLOCK_LIBFUZZER
nonisolated(unsafe) let selectedTarget = FuzzTargets.selected()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.run(selectedTarget, bytes)
    return 0
}
#else
/// Without libFuzzer: runs a target over files (a corpus, or a crash to reproduce).
/// `airlock-fuzz TARGET FILE…`
@main
struct FuzzReplay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let target = arguments.first, FuzzTargets.names.contains(target) else {
            printError("usage: airlock-fuzz \(FuzzTargets.names.joined(separator: "|")) FILE…\n")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            guard let handle = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buffer, 1, buffer.count, handle)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(handle)
            FuzzTargets.run(target, bytes)
            count += 1
        }
        print("airlock-fuzz \(target): \(count) inputs, every property held")
    }
}
#endif

extension FuzzTargets {
    static func selected() -> String {
        let name = ProcessInfo.environment["AIRLOCK_FUZZ_TARGET"] ?? ""
        guard names.contains(name) else {
            printError("set AIRLOCK_FUZZ_TARGET to one of \(names.joined(separator: ", "))\n")
            exit(2)
        }
        return name
    }
}

func printError(_ text: String) {
    text.withCString { _ = write(2, $0, strlen($0)) }
}
