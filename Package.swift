// swift-tools-version: 6.1
import PackageDescription

// Targets depend downward only:
//   airlock (CLI) → AirlockExecution → AirlockBroker → AirlockStore → AirlockPolicy → AirlockCore
//   AirlockStorePostgres → AirlockStore (the team driver; not in `airlock`)
//                 → AirlockSandbox → AirlockPolicy
//                                  → CAirlockLinux, CSeccomp, CCap
// AirlockPolicy is pure: values in, decisions out, no I/O (SigV4 math included).
let package = Package(
    name: "Airlock",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "airlock", targets: ["AirlockCLI"]),
        .executable(name: "airlock-try-syscall", targets: ["TrySyscall"]),
        .executable(name: "airlock-bench", targets: ["AirlockBench"]),
        .executable(name: "airlock-fuzz", targets: ["AirlockFuzz"]),
        .executable(name: "airlock-gate", targets: ["AirlockGateServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSeccomp", pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(
            name: "CCap", pkgConfig: "libcap",
            providers: [.apt(["libcap-dev"])]),
        .systemLibrary(
            name: "CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        // The only C code: what must run between clone() and execve().
        .target(name: "CAirlockLinux", dependencies: ["CCap"]),
        .target(name: "AirlockCore"),
        .target(
            name: "AirlockPolicy",
            dependencies: ["AirlockCore", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "AirlockStore",
            dependencies: ["AirlockCore", "AirlockPolicy", "CSQLite", .product(name: "Crypto", package: "swift-crypto")]),
        // The team store (PostgreSQL). Not linked into `airlock`, whose start-up must not pay
        // for postgres-nio: only the gate and the tests use it.
        .target(
            name: "AirlockStorePostgres",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .target(
            name: "AirlockBroker",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockStore", "CAirlockLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]),
        // One run's broker side (AgentSession) and command proposals (docs/commands.md): the
        // tools a session intercepts, preparing a proposal on a workspace snapshot, execution
        // sandboxes and the approved run. Used by `airlock` (local) and by the team gate
        // (which prepares and applies on its side). No CLI in it.
        .target(
            name: "AirlockExecution",
            dependencies: ["AirlockCore", "AirlockPolicy", "AirlockStore", "AirlockSandbox", "AirlockBroker"]),
        // The team gate's calls, without HTTP: authentication, roles, re-reading proposals.
        .target(
            name: "AirlockGate",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockStore", "AirlockBroker", "AirlockExecution", "AirlockSandbox",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // The approvers' web page (docs/web.md): the gate's and `airlock ui`'s, server-rendered
        // with swift-mustache, sign-in with OpenID Connect (ID tokens verified by jwt-kit), a
        // trusted proxy's header or a one-time link. Only `airlock-gate` links it.
        .target(
            name: "AirlockWeb",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockStore", "AirlockBroker", "AirlockGate", "AirlockExecution",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]),
        // `airlock-gate`: the team gate's HTTPS server (Hummingbird) and its admin commands.
        // Its own executable, so `airlock run` never loads Hummingbird or postgres-nio;
        // `airlock gate …` runs it.
        .executableTarget(
            name: "AirlockGateServer",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockStore", "AirlockStorePostgres", "AirlockBroker", "AirlockGate", "AirlockSandbox", "AirlockExecution", "AirlockWeb",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(
            name: "AirlockSandbox",
            dependencies: ["AirlockCore", "AirlockPolicy", "CAirlockLinux", "CSeccomp", "CCap"]),
        .executableTarget(
            name: "AirlockCLI",
            dependencies: [
                "AirlockCore", "AirlockPolicy", "AirlockSandbox", "AirlockStore", "AirlockBroker", "AirlockExecution",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // A fully static executable: no dynamic loading or relocation at start-up (the
            // launcher should start as fast as bubblewrap: ~1 ms saved), and the binary that is
            // bind-mounted into sandboxes needs no library there. The archives are named because
            // SwiftPM's static link omits the ones FoundationEssentials (used by
            // ArgumentParser) depends on. Airlock calls no NSS function (getpw*), which static
            // glibc could not load. Linked by lld (the toolchain's own): GNU ld and gold print
            // glibc's link-time notes for getaddrinfo, dlopen, getpw* and mktemp in any static
            // link (docs/building.md says why each does not apply here), lld does not.
            linkerSettings: [
                .unsafeFlags([
                    "-use-ld=lld", "-static-executable", "-Xlinker", "--start-group", "-lFoundationEssentials",
                    "-l_FoundationCShims", "-l_FoundationCollections", "-lswiftSynchronization",
                    "-lswiftCore", "-Xlinker", "--end-group", "-lz",
                ])
            ]),
        // Test helper: tries one syscall and prints the errno (bubblewrap's try-syscall idea).
        .executableTarget(name: "TrySyscall"),
        // Measurements for scripts/bench (not shipped, not a test).
        .executableTarget(name: "AirlockBench", dependencies: ["AirlockCore", "AirlockPolicy"]),
        // Fuzz targets for scripts/fuzz (libFuzzer; without it, a replayer of inputs).
        .executableTarget(name: "AirlockFuzz", dependencies: ["AirlockCore", "AirlockPolicy"]),
        .testTarget(name: "AirlockPolicyTests", dependencies: ["AirlockPolicy", "AirlockCore"]),
        .testTarget(
            name: "AirlockSandboxTests",
            dependencies: ["AirlockSandbox", "AirlockPolicy", "AirlockCore"]),
        .testTarget(
            name: "AirlockBrokerTests",
            dependencies: ["AirlockBroker", "AirlockExecution", "AirlockStore", "AirlockStorePostgres", "AirlockGate", "AirlockWeb", "AirlockPolicy", "AirlockCore",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "JWTKit", package: "jwt-kit")]),
    ],
    swiftLanguageModes: [.v6]
)
