import AirlockCore

/// A command proposal as it is pinned (docs/commands.md): the tool, the command the agent ran
/// and the apply step approval runs, where, the artifact holding the snapshot and plan, their
/// digests (`pins`), and what the run may write back. The plan's text and the files shown to
/// the approver are its preview, a record of its own (ProposalPreview).
public struct CommandPayload: Sendable, Equatable {
    public struct Output: Sendable, Equatable {
        public var path: String
        /// The digest of the workspace's file when proposed (nil: there was none).
        public var original: String?
        public init(path: String, original: String?) {
            self.path = path
            self.original = original
        }
    }

    public struct Provider: Sendable, Equatable {
        public var address: String
        public var version: String
        public var hashes: [String]
        public init(address: String, version: String, hashes: [String]) {
            self.address = address
            self.version = version
            self.hashes = hashes
        }
    }

    public var tool: String
    public var binary: String
    public var command: [String]
    public var apply: [String]
    public var workspace: String
    public var directory: String
    /// The artifact's directory name under the state directory's artifacts.
    public var artifact: String
    /// Digests of what the run reads: `snapshot`, and `plan` when there is one.
    public var pins: [String: String]
    public var pinOrder: [String]
    public var reason: String
    public var snapshotFiles: Int
    public var snapshotBytes: Int
    public var snapshotDigest: String
    public var outputs: [Output]
    public var awsEndpoint: String?
    public var mirrorPaths: [String]?
    public var mirrorHosts: [String]?
    public var providers: [Provider]?
    public var notes: [String]

    public init(tool: String, binary: String, command: [String], apply: [String], workspace: String, directory: String, artifact: String,
                pins: [(String, String)], reason: String, snapshotFiles: Int, snapshotBytes: Int, snapshotDigest: String,
                outputs: [Output], awsEndpoint: String? = nil, mirrorPaths: [String]? = nil, mirrorHosts: [String]? = nil,
                providers: [Provider]? = nil, notes: [String] = []) {
        self.tool = tool
        self.binary = binary
        self.command = command
        self.apply = apply
        self.workspace = workspace
        self.directory = directory
        self.artifact = artifact
        self.pins = Dictionary(pins, uniquingKeysWith: { first, _ in first })
        self.pinOrder = pins.map(\.0)
        self.reason = reason
        self.snapshotFiles = snapshotFiles
        self.snapshotBytes = snapshotBytes
        self.snapshotDigest = snapshotDigest
        self.outputs = outputs
        self.awsEndpoint = awsEndpoint
        self.mirrorPaths = mirrorPaths
        self.mirrorHosts = mirrorHosts
        self.providers = providers
        self.notes = notes
    }

    public var json: JSON {
        var fields: [(String, JSON)] = [
            ("type", .string("command")), ("tool", .string(tool)), ("binary", .string(binary)),
            ("command", .array(command.map(JSON.string))), ("apply", .array(apply.map(JSON.string))),
            ("workspace", .string(workspace)), ("directory", .string(directory)), ("artifact", .string(artifact)),
            ("pins", .object(pinOrder.compactMap { key in pins[key].map { (key, JSON.string($0)) } })), ("reason", .string(reason)),
            ("snapshot", .object([("files", .number(Double(snapshotFiles))), ("bytes", .number(Double(snapshotBytes))),
                                  ("digest", .string(snapshotDigest))])),
            ("outputs", .array(outputs.map { .object([("path", .string($0.path)), ("original", $0.original.map(JSON.string) ?? .null)]) })),
        ]
        if let awsEndpoint { fields.append(("aws_endpoint", .string(awsEndpoint))) }
        if let mirrorPaths, let mirrorHosts {
            fields.append(("cli_config", .object([("mirror_paths", .array(mirrorPaths.map(JSON.string))),
                                                  ("mirror_hosts", .array(mirrorHosts.map(JSON.string)))])))
        }
        if let providers {
            fields.append(("providers", .array(providers.map { provider in
                .object([("address", .string(provider.address)), ("version", .string(provider.version)),
                         ("hashes", .array(provider.hashes.map(JSON.string)))])
            })))
        }
        if !notes.isEmpty { fields.append(("notes", .array(notes.map(JSON.string)))) }
        return .object(fields)
    }

    /// Also reads the form of releases before previews were records (`files` and `preview`
    /// inside the payload: ProposalPayload.legacyPreview).
    public init?(json: JSON) {
        guard json["type"]?.string == "command", let tool = json["tool"]?.string, let binary = json["binary"]?.string,
              let command = json["command"]?.stringArray, let apply = json["apply"]?.stringArray,
              let workspace = json["workspace"]?.string, let directory = json["directory"]?.string, let artifact = json["artifact"]?.string,
              case .object(let pinPairs)? = json["pins"], let reason = json["reason"]?.string,
              let snapshot = json["snapshot"], let files = snapshot["files"]?.int, let bytes = snapshot["bytes"]?.int,
              let digest = snapshot["digest"]?.string, case .array(let outputItems)? = json["outputs"] else { return nil }
        var pins: [(String, String)] = []
        for (key, value) in pinPairs {
            guard let text = value.string else { return nil }
            pins.append((key, text))
        }
        var outputs: [Output] = []
        for item in outputItems {
            guard let path = item["path"]?.string else { return nil }
            outputs.append(Output(path: path, original: item["original"]?.string))
        }
        var providers: [Provider]?
        if case .array(let items)? = json["providers"] {
            providers = []
            for item in items {
                guard let address = item["address"]?.string, let version = item["version"]?.string, let hashes = item["hashes"]?.stringArray
                else { return nil }
                providers?.append(Provider(address: address, version: version, hashes: hashes))
            }
        }
        self.init(tool: tool, binary: binary, command: command, apply: apply, workspace: workspace, directory: directory, artifact: artifact,
                  pins: pins, reason: reason, snapshotFiles: files, snapshotBytes: bytes, snapshotDigest: digest, outputs: outputs,
                  awsEndpoint: json["aws_endpoint"]?.string, mirrorPaths: json["cli_config"]?["mirror_paths"]?.stringArray,
                  mirrorHosts: json["cli_config"]?["mirror_hosts"]?.stringArray, providers: providers,
                  notes: json["notes"]?.stringArray ?? [])
    }
}
