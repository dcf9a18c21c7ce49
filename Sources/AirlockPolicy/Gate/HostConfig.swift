import AirlockCore

/// `/etc/airlock/config.yaml`, an agent host's own settings (docs/gate.md, "Team gate"), read
/// strictly like gate.yaml. Today one: the team gate every `airlock run` on this host proposes
/// to, unless `--gate` says another. Pure.
///
/// ```yaml
/// gate: {url: https://gate.internal:8443, token_file: /etc/airlock/gate-token, ca: /etc/airlock/gate-ca.pem}
/// ```
public struct HostConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/airlock/config.yaml"

    public var gateURL: String?
    public var gateTokenFile: String?
    public var gateCA: String?

    public init(gateURL: String? = nil, gateTokenFile: String? = nil, gateCA: String? = nil) {
        self.gateURL = gateURL
        self.gateTokenFile = gateTokenFile
        self.gateCA = gateCA
    }

    public static func parse(_ text: String, source: String) throws(AirlockError) -> HostConfig {
        func fail(_ line: Int, _ message: String) -> AirlockError {
            AirlockError("\(source):\(line): \(message)", hint: "see docs/gate.md, \"Team gate\", step 4")
        }
        let root: YAMLNode
        do {
            guard let parsed = try YAML.parse(text) else { return HostConfig() }
            root = parsed
        } catch {
            throw fail(error.line, error.message)
        }
        guard case .mapping(let entries) = root.value else { throw fail(root.line, "the file must be a mapping") }
        var config = HostConfig()
        for entry in entries {
            guard entry.key == "gate" else { throw fail(entry.line, "unknown key '\(entry.key)' (known: gate)") }
            guard case .mapping(let fields) = entry.value.value else { throw fail(entry.line, "gate must be a mapping {url, token_file, ca}") }
            for field in fields {
                guard let value = field.value.scalar, !field.value.isNull, !value.isEmpty else { throw fail(field.line, "gate.\(field.key) must be a value") }
                switch field.key {
                case "url":
                    guard value.hasPrefix("https://") || value.hasPrefix("http://") else { throw fail(field.line, "gate.url must be an https:// URL (http:// only for a gate on loopback)") }
                    config.gateURL = value
                case "token_file", "ca":
                    guard value.hasPrefix("/") else { throw fail(field.line, "gate.\(field.key) must be an absolute path") }
                    if field.key == "ca" { config.gateCA = value } else { config.gateTokenFile = value }
                default:
                    throw fail(field.line, "unknown key '\(field.key)' in gate (known: url, token_file, ca)")
                }
            }
            guard config.gateURL != nil else { throw fail(entry.line, "gate.url is required") }
        }
        return config
    }
}
