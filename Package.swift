// swift-tools-version: 6.1
import PackageDescription

// Targets depend downward only:
//   airlock (CLI) → AirlockSandbox → AirlockPolicy → AirlockCore
//                                  → CAirlockLinux, CSeccomp, CCap
// AirlockPolicy is pure: values in, decisions out, no I/O.
let package = Package(
    name: "Airlock",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "airlock", targets: ["AirlockCLI"]),
        .executable(name: "airlock-try-syscall", targets: ["TrySyscall"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSeccomp", pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(
            name: "CCap", pkgConfig: "libcap",
            providers: [.apt(["libcap-dev"])]),
        // The only C code: what must run between clone() and execve().
        .target(name: "CAirlockLinux", dependencies: ["CCap"]),
        .target(name: "AirlockCore"),
        .target(name: "AirlockPolicy", dependencies: ["AirlockCore"]),
        .target(
            name: "AirlockSandbox",
            dependencies: ["AirlockCore", "AirlockPolicy", "CAirlockLinux", "CSeccomp", "CCap"]),
        .executableTarget(
            name: "AirlockCLI",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockSandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // A static Swift runtime: start-up in ~2 ms instead of ~5 (the launcher should be
            // as fast as bubblewrap), and the binary bind-mounted into sandboxes needs no Swift
            // libraries there. The archives are named because SwiftPM's static link omits the
            // ones FoundationEssentials (used by ArgumentParser) depends on.
            linkerSettings: [
                .unsafeFlags([
                    "-static-stdlib", "-Xlinker", "--start-group", "-lFoundationEssentials",
                    "-l_FoundationCShims", "-l_FoundationCollections", "-lswiftSynchronization",
                    "-lswiftCore", "-Xlinker", "--end-group", "-Xclang-linker", "-no-pie",
                ])
            ]),
        // Test helper: tries one syscall and prints the errno (bubblewrap's try-syscall idea).
        .executableTarget(name: "TrySyscall"),
        .testTarget(name: "AirlockPolicyTests", dependencies: ["AirlockPolicy", "AirlockCore"]),
        .testTarget(
            name: "AirlockSandboxTests",
            dependencies: ["AirlockSandbox", "AirlockPolicy", "AirlockCore"]),
    ],
    swiftLanguageModes: [.v6]
)
