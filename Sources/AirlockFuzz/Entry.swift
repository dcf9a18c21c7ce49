import Glibc

// Built by scripts/fuzz with -sanitize=fuzzer (and -DAIRLOCK_LIBFUZZER): libFuzzer runs the
// loop; AIRLOCK_FUZZ_TARGET picks the target. SwiftPM links an executable's main under its
// own name, so libFuzzer's main is not used: this main hands over to libFuzzer's driver.
#if AIRLOCK_LIBFUZZER
nonisolated(unsafe) var selectedTarget = ""

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct FuzzMain {
    static func main() {
        selectedTarget = FuzzTargets.selected()
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = runFuzzerDriver(&argc, &argv) { data, size in
            let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
            FuzzTargets.run(selectedTarget, bytes)
            return 0
        }
        exit(status)
    }
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
