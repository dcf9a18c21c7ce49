import AirlockCore

/// Whether the target changed between the preview a human read and the approval (docs/previews.md,
/// "No execution on a drifted target"): the set of resources, and per resource the facts that
/// say it is the same thing in the same condition (an object's ETag, a DeletionPolicy, whether
/// it is kept or versioned, termination protection, tags). Approximate counts (messages,
/// items) move on their own in a live system and are not compared; exact ones (objects,
/// bytes) are. Pure.
public enum PreviewDrift {
    static let comparedDetails: Set<String> = ["ETag", "DeletionPolicy", "termination protection", "change", "of volume", "attached to"]

    public static func changes(shown: [PreviewResource], now: [PreviewResource]) -> [String] {
        func key(_ resource: PreviewResource) -> String { resource.type + " " + resource.id }
        let before = Dictionary(shown.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(now.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        var changes: [String] = []
        for resource in now where before[key(resource)] == nil { changes.append("added: \(key(resource))") }
        for resource in shown where after[key(resource)] == nil { changes.append("gone: \(key(resource))") }
        for old in shown {
            guard let new = after[key(old)] else { continue }
            func compare(_ what: String, _ a: String?, _ b: String?) {
                if a != b { changes.append("\(key(old)): \(what) \(a ?? "none") → \(b ?? "none")") }
            }
            compare("objects", old.objects.map(String.init), new.objects.map(String.init))
            compare("bytes", old.bytes.map(String.init), new.bytes.map(String.init))
            compare("kept", String(old.retained), String(new.retained))
            compare("versioned", String(old.versioned), String(new.versioned))
            for name in comparedDetails.sorted() {
                compare(name, old.details.first { $0.key == name }?.value, new.details.first { $0.key == name }?.value)
            }
            compare("tags", old.tags.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","),
                    new.tags.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","))
        }
        return changes
    }

    public static func resources(_ preview: JSON?) -> [PreviewResource]? {
        guard let preview, preview["type"]?.string == "aws-effect" else { return nil }
        return (preview["resources"]?.array ?? []).compactMap(PreviewResource.init(json:))
    }
}
