import AirlockCore
import Logging

/// The gate's logs as JSON lines on standard error (`log: {format: json}`, the default), for
/// a log shipper: `{"at", "level", "event", "label", …metadata}`, one object per line. swift-log
/// ships no JSON handler; this is the whole of one.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let json: Bool

    init(label: String, json: Bool) {
        self.label = label
        self.json = json
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if json {
            var fields: [(String, JSON)] = [("at", .string(Clock.now())), ("level", .string(event.level.rawValue)),
                                            ("event", .string(event.message.description)), ("label", .string(label))]
            for key in merged.keys.sorted() { fields.append((key, Self.json(merged[key]!))) }
            writeStandardError(JSON.object(fields).serialized() + "\n")
        } else {
            let pairs = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }.joined(separator: " ")
            writeStandardError("\(Clock.now()) \(event.level.rawValue) \(event.message)\(pairs.isEmpty ? "" : " " + pairs)\n")
        }
    }

    static func json(_ value: Logger.MetadataValue) -> JSON {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let value): return .string(value.description)
        case .array(let values): return .array(values.map(json))
        case .dictionary(let entries): return .object(entries.keys.sorted().map { ($0, json(entries[$0]!)) })
        }
    }
}
