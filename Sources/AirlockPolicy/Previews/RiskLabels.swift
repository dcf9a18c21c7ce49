import AirlockCore

/// Risk labels of an AWS proposal (docs/previews.md), computed from its operation, its
/// parameters and the facts its preview read: shown first, in words, and kept as data for the
/// rules to decide by. Pure: values in, labels out.
public enum RiskLabel: String, Sendable, CaseIterable {
    case destructive
    case irreversible
    case production
    case dataLoss = "data-loss"
    case permissions
    case publicExposure = "public-exposure"
    case cost
}

public struct Risk: Sendable, Equatable {
    public var label: RiskLabel
    public var reason: String

    public init(_ label: RiskLabel, _ reason: String) {
        self.label = label
        self.reason = reason
    }

    public var json: JSON { .object([("label", .string(label.rawValue)), ("reason", .string(reason))]) }
}

/// What a preview found about one resource the change touches.
public struct PreviewResource: Sendable, Equatable {
    public var type: String
    public var id: String
    public var name: String?
    public var tags: [(key: String, value: String)]
    /// Objects, bytes, messages, items the resource holds (what a deletion loses).
    public var objects: Int?
    public var bytes: Int?
    public var messages: Int?
    public var items: Int?
    /// Kept when the change deletes it (a stack's DeletionPolicy Retain or Snapshot).
    public var retained: Bool
    /// Versioning (S3): a deleted object's earlier versions stay.
    public var versioned: Bool
    public var details: [(key: String, value: String)]

    public init(type: String, id: String, name: String? = nil, tags: [(key: String, value: String)] = [], objects: Int? = nil,
                bytes: Int? = nil, messages: Int? = nil, items: Int? = nil, retained: Bool = false, versioned: Bool = false,
                details: [(key: String, value: String)] = []) {
        self.type = type
        self.id = id
        self.name = name
        self.tags = tags
        self.objects = objects
        self.bytes = bytes
        self.messages = messages
        self.items = items
        self.retained = retained
        self.versioned = versioned
        self.details = details
    }

    public static func == (a: PreviewResource, b: PreviewResource) -> Bool { a.json == b.json }

    public var holdsSomething: Bool { [objects, messages, items].contains { ($0 ?? 0) > 0 } || (bytes ?? 0) > 0 }

    public var json: JSON {
        var fields: [(String, JSON)] = [("type", .string(type)), ("id", .string(id))]
        if let name { fields.append(("name", .string(name))) }
        if !tags.isEmpty { fields.append(("tags", .object(tags.map { ($0.key, .string($0.value)) }))) }
        for (key, value) in [("objects", objects), ("bytes", bytes), ("messages", messages), ("items", items)] {
            if let value { fields.append((key, .number(Double(value)))) }
        }
        if retained { fields.append(("retained", .bool(true))) }
        if versioned { fields.append(("versioned", .bool(true))) }
        if !details.isEmpty { fields.append(("details", .object(details.map { ($0.key, .string($0.value)) }))) }
        return .object(fields)
    }

    public init?(json: JSON) {
        guard let type = json["type"]?.string, let id = json["id"]?.string else { return nil }
        self.init(type: type, id: id, name: json["name"]?.string,
                  tags: json["tags"]?.objectPairs?.compactMap { key, value in value.string.map { (key, $0) } } ?? [],
                  objects: json["objects"]?.int, bytes: json["bytes"]?.int, messages: json["messages"]?.int, items: json["items"]?.int,
                  retained: json["retained"]?.bool ?? false, versioned: json["versioned"]?.bool ?? false,
                  details: json["details"]?.objectPairs?.compactMap { key, value in value.string.map { (key, $0) } } ?? [])
    }
}

public enum RiskLabels {
    /// Verbs whose operations remove or end something.
    static let destructiveVerbs = ["Delete", "Terminate", "Purge", "Remove", "Deregister", "ScheduleKeyDeletion", "Detach", "Revoke",
                                   "Disassociate", "Cancel"]
    /// Values of tags that mark production (keys env, environment, stage, tier), and name
    /// words that do.
    static let productionTagKeys: Set<String> = ["env", "environment", "stage", "tier", "aws:cloudformation:stack-name"]
    static let productionWords: Set<String> = ["prod", "production", "prd", "live"]

    public static func isDestructive(_ operation: String) -> Bool {
        destructiveVerbs.contains { operation.hasPrefix($0) }
    }

    /// `parameters`: the request's parameters flattened (`StackName`, `InstanceId.1`,
    /// `IpPermissions.1.IpRanges.1.CidrIp`, S3's `x-amz-acl`…); `resources`: what the preview
    /// read; `productionAccounts`: accounts a profile names as production.
    public static func assess(service: String, operation: String?, parameters: [(key: String, value: String)],
                              resources: [PreviewResource], account: String? = nil, productionAccounts: Set<String> = []) -> [Risk] {
        let operation = operation ?? ""
        var risks: [Risk] = []
        // An object locked in compliance mode cannot be deleted by anyone until its date.
        if service == "s3", parameters.contains(where: { $0.key.lowercased() == "x-amz-object-lock-mode" && $0.value.uppercased() == "COMPLIANCE" }) {
            risks.append(Risk(.irreversible, "\(operation) locks the object in COMPLIANCE mode: nobody can delete it before its retention date"))
        }
        let destructive = isDestructive(operation)
        if destructive {
            risks.append(Risk(.destructive, "\(service):\(operation) removes or ends what it names"))
            let lost = resources.filter { !$0.retained && !$0.versioned }
            if !resources.isEmpty, !lost.isEmpty {
                let kept = resources.count - lost.count
                risks.append(Risk(.irreversible, "\(lost.count) of \(resources.count) resource\(resources.count == 1 ? "" : "s") "
                                  + "with no retain policy, snapshot or versioning" + (kept > 0 ? " (\(kept) kept)" : "")))
            }
            let holding = lost.filter(\.holdsSomething)
            if !holding.isEmpty {
                risks.append(Risk(.dataLoss, holding.map(describeContents).joined(separator: "; ")))
            }
        }
        if let production = productionReason(parameters: parameters, resources: resources, account: account, accounts: productionAccounts) {
            risks.append(Risk(.production, production))
        }
        if let permissions = permissionsReason(service: service, operation: operation, parameters: parameters) {
            risks.append(Risk(.permissions, permissions))
        }
        if let exposure = exposureReason(service: service, operation: operation, parameters: parameters) {
            risks.append(Risk(.publicExposure, exposure))
        }
        if let cost = costReason(service: service, operation: operation, parameters: parameters) {
            risks.append(Risk(.cost, cost))
        }
        return risks
    }

    static func describeContents(_ resource: PreviewResource) -> String {
        var parts: [String] = []
        if let objects = resource.objects, objects > 0 {
            parts.append("\(objects) object\(objects == 1 ? "" : "s")" + (resource.bytes.map { ", \(ByteSize.human($0))" } ?? ""))
        } else if let bytes = resource.bytes, bytes > 0 {
            parts.append(ByteSize.human(bytes))
        }
        if let messages = resource.messages, messages > 0 { parts.append("about \(messages) message\(messages == 1 ? "" : "s")") }
        if let items = resource.items, items > 0 { parts.append("about \(items) item\(items == 1 ? "" : "s")") }
        return "\(resource.name ?? resource.id) (\(resource.type)) holds " + parts.joined(separator: ", ")
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
    }

    static func productionReason(parameters: [(key: String, value: String)], resources: [PreviewResource], account: String?,
                                 accounts: Set<String>) -> String? {
        if let account, accounts.contains(account) { return "account \(account) is listed as production" }
        for resource in resources {
            for tag in resource.tags where productionTagKeys.contains(tag.key.lowercased()) && words(tag.value).contains(where: productionWords.contains) {
                return "\(resource.name ?? resource.id) is tagged \(tag.key)=\(tag.value)"
            }
        }
        let named = resources.flatMap { [$0.name, $0.id].compactMap { $0 } }
            + parameters.filter { $0.key.hasSuffix("Name") || $0.key == "Bucket" || $0.key.hasSuffix("Id") || $0.key.hasSuffix("Arn") }.map(\.value)
        if let name = named.first(where: { words($0).contains(where: productionWords.contains) }) {
            return "\(name) is named as production"
        }
        return nil
    }

    static func permissionsReason(service: String, operation: String, parameters: [(key: String, value: String)] = []) -> String? {
        // An object written or copied with grants, or encrypted with a key named in the
        // request (another account's, perhaps), decides who else reads it.
        if service == "s3", ["PutObject", "CopyObject", "CreateMultipartUpload", "PutObjectAcl"].contains(operation) {
            if let grant = parameters.first(where: { $0.key.lowercased().hasPrefix("x-amz-grant-") }) {
                return "\(operation) grants access (\(grant.key.lowercased()): \(grant.value.prefix(120)))"
            }
            if let key = parameters.first(where: { $0.key.lowercased() == "x-amz-server-side-encryption-aws-kms-key-id" }) {
                return "\(operation) encrypts with the KMS key \(key.value.prefix(120)), whose owner decides who can read it"
            }
        }
        guard service == "iam" || service == "sts" || service == "kms" || service == "organizations" else { return nil }
        let granting = ["Put", "Attach", "CreateAccessKey", "UpdateAssumeRolePolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion",
                        "AddUserToGroup", "AddRoleToInstanceProfile", "CreateLoginProfile", "UpdateLoginProfile", "CreateGrant", "PutKeyPolicy"]
        guard granting.contains(where: { operation.hasPrefix($0) }) else { return nil }
        // A document naming every action or every resource says so.
        let granted = wildcards(in: parameters.first { $0.key == "PolicyDocument" }?.value ?? "").map(\.what).filter { $0 != "anyone" }
        var unique: [String] = []
        for what in granted where !unique.contains(what) { unique.append(what) }
        return "\(service):\(operation) changes who may do what" + (unique.isEmpty ? "" : ", granting " + unique.joined(separator: " on "))
    }

    /// The wildcards a policy document grants (`Action "*"`, `Resource "*"`, a `Principal`
    /// of `"*"`), with the text that says so; whitespace is ignored.
    public static func wildcards(in document: String) -> [(what: String, pattern: String)] {
        let compact = document.filter { !$0.isWhitespace }
        return [("every action", "\"Action\":\"*\""), ("every action", "\"Action\":[\"*\""), ("every resource", "\"Resource\":\"*\""),
                ("every resource", "\"Resource\":[\"*\""), ("anyone", "\"Principal\":\"*\""), ("anyone", "\"AWS\":\"*\"")]
            .filter { compact.range(ofText: $0.1) != nil }.map { (what: $0.0, pattern: $0.1) }
    }

    static func exposureReason(service: String, operation: String, parameters: [(key: String, value: String)]) -> String? {
        switch (service, operation) {
        case ("ec2", "AuthorizeSecurityGroupIngress"):
            if let open = parameters.first(where: { ($0.key.hasSuffix("CidrIp") || $0.key.hasSuffix("CidrIpv6")) && ["0.0.0.0/0", "::/0"].contains($0.value) }) {
                let port = parameters.first { $0.key.hasSuffix("FromPort") }?.value
                return "opens \(port.map { "port \($0)" } ?? "a port") to \(open.value), the whole internet"
            }
        case ("s3", "PutBucketAcl"), ("s3", "PutObjectAcl"), ("s3", "PutObject"), ("s3", "CreateBucket"):
            if let acl = parameters.first(where: { $0.key.lowercased() == "x-amz-acl" }),
               ["public-read", "public-read-write", "authenticated-read"].contains(acl.value) {
                return "canned ACL \(acl.value)"
            }
            if parameters.contains(where: { $0.key.lowercased().hasPrefix("x-amz-grant-") && $0.value.contains("http://acs.amazonaws.com/groups/global/AllUsers") }) {
                return "grants to AllUsers"
            }
        case ("s3", "PutPublicAccessBlock"), ("s3", "DeletePublicAccessBlock"):
            if operation == "DeletePublicAccessBlock" { return "removes the bucket's public access block" }
            if parameters.contains(where: { ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"].contains($0.key) && $0.value == "false" }) {
                return "turns part of the public access block off"
            }
        case ("s3", "PutBucketPolicy"):
            if parameters.contains(where: { $0.key == "policy" && wildcards(in: $0.value).contains { $0.what == "anyone" } }) {
                return "the policy names Principal \"*\""
            }
        default:
            break
        }
        return nil
    }

    static func costReason(service: String, operation: String, parameters: [(key: String, value: String)]) -> String? {
        func value(_ key: String) -> String? { parameters.first { $0.key == key }?.value }
        switch (service, operation) {
        case ("ec2", "RunInstances"):
            return "\(value("MaxCount") ?? "1") instance\(value("MaxCount") == "1" || value("MaxCount") == nil ? "" : "s") of \(value("InstanceType") ?? "the default type")"
        case ("rds", "CreateDBInstance"), ("rds", "CreateDBCluster"):
            return "a database of class \(value("DBInstanceClass") ?? "unnamed")"
        case ("dynamodb", "CreateTable"), ("eks", "CreateCluster"), ("elasticache", "CreateCacheCluster"), ("redshift", "CreateCluster"):
            return "\(service):\(operation) creates a billed resource"
        default:
            return nil
        }
    }
}
