import AirlockCore

/// What a terraform plan's JSON (`terraform show -json PLAN`) says will run besides the
/// provider calls: provisioners execute commands during apply, with the execution's rights,
/// and `terraform show`'s text does not mention them. Pure.
public enum TerraformPlanFacts {
    public struct Provisioner: Sendable, Equatable {
        public var address: String
        public var type: String
        /// The command or script, when it is a constant; otherwise a description.
        public var command: String
    }

    public static func provisioners(_ plan: JSON) -> [Provisioner] {
        guard let root = plan["configuration"]?["root_module"] else { return [] }
        return provisioners(in: root, prefix: "")
    }

    static func provisioners(in module: JSON, prefix: String) -> [Provisioner] {
        var found: [Provisioner] = []
        for resource in module["resources"]?.array ?? [] {
            let address = prefix + (resource["address"]?.string ?? "?")
            for provisioner in resource["provisioners"]?.array ?? [] {
                let type = provisioner["type"]?.string ?? "?"
                let expressions = provisioner["expressions"]
                var command = "(computed at apply)"
                for key in ["command", "inline", "script", "scripts"] {
                    guard let expression = expressions?[key] else { continue }
                    if let constant = expression["constant_value"] {
                        command = constant.string ?? constant.stringArray?.joined(separator: "; ") ?? constant.serialized()
                    } else if let references = expression["references"]?.stringArray {
                        command = "(computed from \(references.joined(separator: ", ")))"
                    }
                    break
                }
                found.append(Provisioner(address: address, type: type, command: command))
            }
        }
        for (name, call) in module["module_calls"]?.objectPairs ?? [] {
            if let child = call["module"] { found += provisioners(in: child, prefix: prefix + "module.\(name).") }
        }
        return found
    }

    /// The lines `airlock show` adds to the preview.
    public static func describe(_ provisioners: [Provisioner]) -> String {
        guard !provisioners.isEmpty else { return "" }
        var text = "\nCommands this plan runs during apply (provisioners; they run in the execution sandbox, whose AWS calls go through):\n"
        for provisioner in provisioners {
            text += "  \(provisioner.address): \(provisioner.type): \(provisioner.command)\n"
        }
        return text
    }
}
