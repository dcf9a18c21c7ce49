import AirlockCore
import AirlockPolicy

/// What an AWS API proposal will do, read before anyone decides (docs/previews.md): the
/// resources it touches and what they hold, then risk labels over those facts. Reads only,
/// through `AWSPreviewReader`; an operation without a previewer says so. The record is kept
/// beside the proposal, outside its digest.
public enum AWSPreviews {
    /// The preview record of `pinned`.
    static func preview(_ pinned: PinnedRequest, reader: AWSPreviewReader, service lookup: (String) -> AWSService?,
                        productionAccounts: Set<String> = []) -> JSON {
        let operation = pinned.operation ?? ""
        let parameters = Self.parameters(pinned, wire: lookup(pinned.service)?.wireProtocol)
        var resources: [PreviewResource] = []
        var previewed = true
        switch (pinned.service, operation) {
        case ("cloudformation", "DeleteStack"), ("cloudformation", "UpdateStack"), ("cloudformation", "ExecuteChangeSet"):
            resources = cloudFormation(operation, parameters, reader: reader, lookup: lookup)
        case ("ec2", "TerminateInstances"), ("ec2", "StopInstances"):
            resources = instances(parameters, terminating: operation == "TerminateInstances", reader: reader, lookup: lookup)
        case ("ec2", "DeleteVolume"):
            resources = volumes(parameters, reader: reader, lookup: lookup)
        case ("ec2", "DeleteSnapshot"):
            resources = snapshots(parameters, reader: reader, lookup: lookup)
        case ("s3", "DeleteObject"), ("s3", "DeleteObjects"), ("s3", "DeleteBucket"):
            resources = s3(operation, pinned, reader: reader, lookup: lookup)
        case ("sqs", "DeleteQueue"), ("sqs", "PurgeQueue"):
            if let url = value(parameters, "QueueUrl") {
                var queue = PreviewResource(type: "AWS::SQS::Queue", id: url, name: url.split(separator: "/").last.map(String.init))
                contents(of: &queue, reader: reader, lookup: lookup)
                resources = [queue]
            }
        case ("dynamodb", "DeleteTable"):
            if let name = value(parameters, "TableName") {
                var table = PreviewResource(type: "AWS::DynamoDB::Table", id: name, name: name)
                contents(of: &table, reader: reader, lookup: lookup)
                resources = [table]
            }
        case ("logs", "DeleteLogGroup"):
            if let name = value(parameters, "logGroupName"), let logs = lookup("logs") {
                let groups = reader.json(logs, "DescribeLogGroups", .object([("logGroupNamePrefix", .string(name))]))?["logGroups"]?.array ?? []
                if let group = groups.first(where: { $0["logGroupName"]?.string == name }) {
                    resources = [PreviewResource(type: "AWS::Logs::LogGroup", id: name, name: name, bytes: group["storedBytes"]?.int,
                                                 details: [("retention", group["retentionInDays"]?.int.map { "\($0) days" } ?? "never expires")])]
                }
            }
        case ("iam", "PutRolePolicy"), ("iam", "PutUserPolicy"), ("iam", "PutGroupPolicy"), ("iam", "UpdateAssumeRolePolicy"):
            policyDiff(operation, parameters, reader: reader, lookup: lookup)
        case ("iam", "AttachRolePolicy"), ("iam", "AttachUserPolicy"), ("iam", "AttachGroupPolicy"):
            managedPolicy(parameters, reader: reader, lookup: lookup)
        case ("iam", "CreateAccessKey"):
            if let iam = lookup("iam") {
                let user = value(parameters, "UserName")
                let keys = reader.query(iam, "ListAccessKeys", user.map { [("UserName", $0)] } ?? [])?.descendants("AccessKeyMetadata").first?.all("member") ?? []
                resources = [PreviewResource(type: "AWS::IAM::User", id: user ?? "(the caller)", name: user,
                                             details: [("access keys now", "\(keys.count)" + (keys.isEmpty ? "" : ": " + keys.compactMap { key in key["AccessKeyId"].map { "\($0) (\(key["Status"] ?? "?"))" } }.joined(separator: ", "))),
                                                       ("new key", "a long-lived secret that works outside Airlock once handed over")])]
            }
        case ("ec2", "AuthorizeSecurityGroupIngress"):
            resources = securityGroup(parameters, reader: reader, lookup: lookup)
        case ("rds", "DeleteDBInstance"), ("rds", "ModifyDBInstance"), ("rds", "DeleteDBCluster"):
            resources = database(operation, parameters, reader: reader, lookup: lookup)
        case ("kms", "ScheduleKeyDeletion"):
            if let kms = lookup("kms"), let key = value(parameters, "KeyId"),
               let metadata = reader.json(kms, "DescribeKey", .object([("KeyId", .string(key))]))?["KeyMetadata"] {
                resources = [PreviewResource(type: "AWS::KMS::Key", id: metadata["KeyId"]?.string ?? key, name: metadata["Description"]?.string,
                                             details: [("state", metadata["KeyState"]?.string ?? ""), ("usage", metadata["KeyUsage"]?.string ?? ""),
                                                       ("deleted after", "\(value(parameters, "PendingWindowInDays") ?? "30") days; whatever it encrypted cannot be decrypted after that")])]
            }
        case ("lambda", "DeleteFunction"), ("lambda", "UpdateFunctionCode"):
            if let lambda = lookup("lambda") {
                let name = pinned.path.split(separator: "/").dropFirst(2).first.map { PercentEncoding.decode(String($0)) } ?? ""
                if let response = reader.rest(lambda, "GetFunctionConfiguration", path: "/2015-03-31/functions/\(PercentEncoding.encode(name))/configuration"),
                   let configuration = try? JSON.parse(bytes: response.body) {
                    var details: [(key: String, value: String)] = [("runtime", configuration["Runtime"]?.string ?? ""),
                                                                    ("code sha256", configuration["CodeSha256"]?.string ?? ""),
                                                                    ("last modified", configuration["LastModified"]?.string ?? "")]
                    if operation == "UpdateFunctionCode" { details.append(("new code", "\(ByteSize.human(pinned.body.count)) of request body")) }
                    resources = [PreviewResource(type: "AWS::Lambda::Function", id: configuration["FunctionArn"]?.string ?? name, name: name,
                                                 bytes: configuration["CodeSize"]?.int, retained: operation != "DeleteFunction", details: details)]
                }
            }
        case ("route53", "ChangeResourceRecordSets"):
            recordSets(pinned, reader: reader, lookup: lookup)
        case ("s3", "PutBucketPolicy"), ("s3", "PutBucketAcl"), ("s3", "PutPublicAccessBlock"):
            bucketSetting(operation, pinned, reader: reader, lookup: lookup)
        default:
            previewed = false
        }
        // The account the change lands in: from an ARN the preview read, else (only when a
        // profile names production accounts) the caller's, asked of STS.
        var account = (resources.map(\.id) + parameters.map(\.value)).lazy.compactMap(Self.account(inARN:)).first
        if account == nil, !productionAccounts.isEmpty, let sts = lookup("sts") {
            account = reader.query(sts, "GetCallerIdentity", [])?.descendants("Account").first?.text
        }
        let risks = RiskLabels.assess(service: pinned.service, operation: operation, parameters: parameters, resources: resources,
                                      account: account, productionAccounts: productionAccounts)
        var fields: [(String, JSON)] = [("type", .string("aws-effect")), ("operation", .string("\(pinned.service):\(operation)"))]
        fields.append(("labels", .array(risks.map(\.json))))
        fields.append(("resources", .array(resources.map(\.json))))
        var notes = reader.notes
        if !previewed { notes.insert("no preview for this operation: the request above is all there is to review", at: 0) }
        fields.append(("notes", .array(notes.map(JSON.string))))
        fields.append(("reads", .number(Double(reader.reads))))
        fields += reader.extra
        return .object(fields)
    }

    /// `arn:aws:SERVICE:REGION:ACCOUNT:…` → ACCOUNT.
    static func account(inARN text: String) -> String? {
        guard text.hasPrefix("arn:") else { return nil }
        let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[4].count == 12, parts[4].allSatisfy(\.isNumber) else { return nil }
        return String(parts[4])
    }

    /// The request's parameters, flattened: form fields (query, EC2), JSON members with dotted
    /// paths, REST query items and `x-amz-*` headers.
    public static func parameters(_ pinned: PinnedRequest, wire known: AWSProtocol?) -> [(key: String, value: String)] {
        // Without the catalog at hand (`airlock show`), the body's type says the protocol.
        let type = pinned.header("content-type") ?? ""
        let wire = known ?? (type.hasPrefix("application/x-www-form-urlencoded") ? .query : type.hasPrefix("application/x-amz-json") ? .json : nil)
        var out: [(key: String, value: String)] = []
        switch wire {
        case .query?, .ec2?:
            let request = AWSRequest(method: pinned.method, path: pinned.path, query: pinned.query,
                                     headers: pinned.headers.map { ($0.name, $0.value) }, body: pinned.body)
            out = request.formParameters.map { ($0.key, $0.value ?? "") }
        case .json?, .restJSON?:
            if let json = try? JSON.parse(bytes: pinned.body) { flatten(json, prefix: "", into: &out) }
            fallthrough
        default:
            out += AWSRequest.parseForm(pinned.query).map { ($0.key, $0.value ?? "") }
            out += pinned.headers.filter { $0.name.lowercased().hasPrefix("x-amz-") }.map { ($0.name.lowercased(), $0.value) }
            if wire == .restXML, pinned.method == "PUT", pinned.query.hasPrefix("policy") {
                out.append(("policy", String(decoding: pinned.body.prefix(65536), as: UTF8.self)))
            }
            if wire == .restXML, let xml = try? XMLTree.parse(pinned.body), xml.localName == "PublicAccessBlockConfiguration" {
                out += xml.children.map { ($0.localName, $0.text.lowercased()) }
            }
        }
        return out
    }

    static func flatten(_ json: JSON, prefix: String, into out: inout [(key: String, value: String)]) {
        switch json {
        case .object(let pairs):
            for (key, value) in pairs { flatten(value, prefix: prefix.isEmpty ? key : prefix + "." + key, into: &out) }
        case .array(let items):
            for (index, item) in items.enumerated() { flatten(item, prefix: prefix + ".\(index + 1)", into: &out) }
        case .string(let text): out.append((prefix, text))
        case .number(let number): out.append((prefix, number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)))
        case .bool(let flag): out.append((prefix, flag ? "true" : "false"))
        case .null: break
        }
    }

    static func value(_ parameters: [(key: String, value: String)], _ key: String) -> String? {
        parameters.first { $0.key == key }?.value
    }

    static func values(_ parameters: [(key: String, value: String)], prefix: String) -> [String] {
        parameters.filter { $0.key.hasPrefix(prefix + ".") || $0.key == prefix }.map(\.value)
    }

    static func tags(_ element: XMLElement?, item: String = "member", key: String = "Key", value: String = "Value") -> [(key: String, value: String)] {
        (element?.all(item) ?? []).compactMap { tag in tag[key].map { ($0, tag[value] ?? "") } }
    }

    // MARK: CloudFormation

    /// The stack, each of its resources with its deletion policy, and what the data-holding
    /// ones hold (objects and bytes in a bucket, messages in a queue, items in a table).
    static func cloudFormation(_ operation: String, _ parameters: [(key: String, value: String)], reader: AWSPreviewReader,
                               lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let cfn = lookup("cloudformation"), let stackName = value(parameters, "StackName") else {
            reader.note("the request names no stack")
            return []
        }
        var resources: [PreviewResource] = []
        if let stack = reader.query(cfn, "DescribeStacks", [("StackName", stackName)])?.descendants("Stacks").first?.child("member") {
            var details: [(key: String, value: String)] = [("status", stack["StackStatus"] ?? "")]
            if stack["EnableTerminationProtection"] == "true" { details.append(("termination protection", "on: the delete will fail")) }
            resources.append(PreviewResource(type: "AWS::CloudFormation::Stack", id: stack["StackId"] ?? stackName, name: stack["StackName"],
                                             tags: tags(stack.child("Tags")), details: details))
        }
        var changes: [String: (action: String, replacement: String?)]?
        if operation == "ExecuteChangeSet", let changeSet = value(parameters, "ChangeSetName") {
            let described = reader.query(cfn, "DescribeChangeSet", [("StackName", stackName), ("ChangeSetName", changeSet)])
            var found: [String: (action: String, replacement: String?)] = [:]
            for change in described?.descendants("ResourceChange") ?? [] {
                if let logical = change["LogicalResourceId"] { found[logical] = (change["Action"] ?? "", change["Replacement"]) }
            }
            changes = found
        } else if operation == "UpdateStack" {
            reader.note("an update's changes are known only from a change set: the stack's resources now are listed; "
                        + "propose `aws cloudformation create-change-set` and `execute-change-set` to see each change")
        }
        // Deletion policies are in the template (Retain and Snapshot keep the resource).
        var policies: [String: String] = [:]
        if let body = reader.query(cfn, "GetTemplate", [("StackName", stackName)])?.descendants("TemplateBody").first?.text {
            if let json = try? JSON.parse(body), case .object(let pairs)? = json["Resources"] {
                for (logical, resource) in pairs { if let policy = resource["DeletionPolicy"]?.string { policies[logical] = policy } }
            } else {
                for (logical, policy) in yamlDeletionPolicies(body) { policies[logical] = policy }
            }
        }
        let listed = reader.query(cfn, "DescribeStackResources", [("StackName", stackName)])?.descendants("StackResources").first?.all("member") ?? []
        var lookups = 0
        for member in listed {
            let logical = member["LogicalResourceId"] ?? ""
            let type = member["ResourceType"] ?? "?"
            let physical = member["PhysicalResourceId"] ?? logical
            var resource = PreviewResource(type: type, id: physical, name: logical, details: [("status", member["ResourceStatus"] ?? "")])
            if let policy = policies[logical] {
                resource.details.append(("DeletionPolicy", policy))
                resource.retained = ["Retain", "RetainExceptOnCreate", "Snapshot"].contains(policy)
            }
            if let changes {
                guard let change = changes[logical] else { continue }  // unchanged by the change set
                resource.details.append(("change", change.action + (change.replacement.map { $0 == "True" ? " (replacement)" : $0 == "Conditional" ? " (may replace)" : "" } ?? "")))
                if change.action == "Add" || (change.action == "Modify" && change.replacement == "False") { resource.retained = true }
            } else if operation == "UpdateStack" {
                resource.retained = true  // not known to go; listed for context
            }
            if lookups < 20 {
                lookups += 1
                contents(of: &resource, reader: reader, lookup: lookup)
            }
            resources.append(resource)
        }
        return resources
    }

    /// `DeletionPolicy: Retain` lines under `Resources:` in a YAML template (short-form
    /// intrinsic tags such as `!Ref` make a full reading pointless here).
    static func yamlDeletionPolicies(_ body: String) -> [(String, String)] {
        var found: [(String, String)] = []
        var inResources = false
        var current: String?
        for raw in body.split(separator: "\n") {
            let line = String(raw)
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingWhitespace()
            if indent == 0 { inResources = text.hasPrefix("Resources:"); current = nil; continue }
            guard inResources, !text.isEmpty, !text.hasPrefix("#") else { continue }
            if indent == 2, text.hasSuffix(":") { current = String(text.dropLast()); continue }
            if let current, text.hasPrefix("DeletionPolicy:") {
                found.append((current, String(text.dropFirst("DeletionPolicy:".count)).trimmingWhitespace().filter { $0 != "\"" && $0 != "'" }))
            }
        }
        return found
    }

    /// What a data-holding resource holds, read from its own service.
    static func contents(of resource: inout PreviewResource, reader: AWSPreviewReader, lookup: (String) -> AWSService?) {
        switch resource.type {
        case "AWS::S3::Bucket":
            guard let s3 = lookup("s3") else { return }
            let (objects, bytes, complete) = bucketContents(resource.id, s3: s3, reader: reader)
            resource.objects = objects
            resource.bytes = bytes
            if !complete { resource.details.append(("contents", "at least (listing stopped)")) }
            resource.versioned = bucketVersioned(resource.id, s3: s3, reader: reader)
        case "AWS::SQS::Queue":
            guard let sqs = lookup("sqs") else { return }
            let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
            let answer = reader.json(sqs, "GetQueueAttributes", .object([("QueueUrl", .string(resource.id)),
                                                                          ("AttributeNames", .array(names.map(JSON.string)))]))
            if let attributes = answer?["Attributes"] {
                resource.messages = names.compactMap { attributes[$0]?.string.flatMap { Int($0) } }.reduce(0, +)
            }
        case "AWS::DynamoDB::Table":
            guard let dynamodb = lookup("dynamodb") else { return }
            if let table = reader.json(dynamodb, "DescribeTable", .object([("TableName", .string(resource.id))]))?["Table"] {
                resource.items = table["ItemCount"]?.int
                resource.bytes = table["TableSizeBytes"]?.int
            }
        default:
            break
        }
    }

    /// Objects and bytes in a bucket, from at most 5 pages of ListObjectsV2.
    static func bucketContents(_ bucket: String, s3: AWSService, reader: AWSPreviewReader) -> (Int?, Int?, Bool) {
        var objects = 0
        var bytes = 0
        var token: String?
        for _ in 0..<5 {
            var query = "list-type=2"
            if let token { query += "&continuation-token=" + PercentEncoding.encode(token) }
            guard let response = reader.rest(s3, "ListObjectsV2", path: "/" + bucket, query: query),
                  let listing = try? XMLTree.parse(response.body) else { return (nil, nil, false) }
            for object in listing.all("Contents") {
                objects += 1
                bytes += Int(object["Size"] ?? "") ?? 0
            }
            guard listing["IsTruncated"] == "true", let next = listing["NextContinuationToken"] else { return (objects, bytes, true) }
            token = next
        }
        return (objects, bytes, false)
    }

    static func bucketVersioned(_ bucket: String, s3: AWSService, reader: AWSPreviewReader) -> Bool {
        guard let response = reader.rest(s3, "GetBucketVersioning", path: "/" + bucket, query: "versioning"),
              let xml = try? XMLTree.parse(response.body) else { return false }
        return xml["Status"] == "Enabled"
    }

    // MARK: IAM

    /// The policy document against the current one, as a diff, with wildcards flagged (in the
    /// preview's notes: `Action "*"` and `Resource "*"` grant everything).
    static func policyDiff(_ operation: String, _ parameters: [(key: String, value: String)], reader: AWSPreviewReader,
                           lookup: (String) -> AWSService?) {
        guard let iam = lookup("iam"), let document = value(parameters, "PolicyDocument") else { return }
        var current: String?
        switch operation {
        case "UpdateAssumeRolePolicy":
            if let role = value(parameters, "RoleName") {
                current = reader.query(iam, "GetRole", [("RoleName", role)])?.descendants("AssumeRolePolicyDocument").first?.text
            }
        default:
            let (holder, key, action) = operation == "PutRolePolicy" ? ("RoleName", "RoleName", "GetRolePolicy")
                : operation == "PutUserPolicy" ? ("UserName", "UserName", "GetUserPolicy") : ("GroupName", "GroupName", "GetGroupPolicy")
            if let name = value(parameters, holder), let policy = value(parameters, "PolicyName") {
                current = reader.query(iam, action, [(key, name), ("PolicyName", policy)])?.descendants("PolicyDocument").first?.text
            }
        }
        func pretty(_ text: String) -> String {
            let decoded = text.hasPrefix("%") ? PercentEncoding.decode(text) : text
            return (try? JSON.parse(decoded))?.pretty() ?? decoded
        }
        let new = pretty(document)
        let old = current.map(pretty) ?? ""
        reader.extra.append(("diff", .string(LineDiff.unified(old: old, new: new, oldName: current == nil ? "none" : "current", newName: "proposed"))))
        flagWildcards(new, reader: reader)
    }

    /// A managed policy's document (its default version), wildcards flagged.
    static func managedPolicy(_ parameters: [(key: String, value: String)], reader: AWSPreviewReader, lookup: (String) -> AWSService?) {
        guard let iam = lookup("iam"), let arn = value(parameters, "PolicyArn"),
              let version = reader.query(iam, "GetPolicy", [("PolicyArn", arn)])?.descendants("DefaultVersionId").first?.text,
              let document = reader.query(iam, "GetPolicyVersion", [("PolicyArn", arn), ("VersionId", version)])?.descendants("Document").first?.text else { return }
        let decoded = document.hasPrefix("%") ? PercentEncoding.decode(document) : document
        let pretty = (try? JSON.parse(decoded))?.pretty() ?? decoded
        reader.extra.append(("diff", .string(LineDiff.unified(old: "", new: pretty, oldName: "not attached", newName: arn))))
        flagWildcards(pretty, reader: reader)
    }

    static func flagWildcards(_ document: String, reader: AWSPreviewReader) {
        for (what, pattern) in RiskLabels.wildcards(in: document) { reader.note("wildcard: the document grants \(what) (\(pattern))") }
    }

    /// A security group's rules now, beside the ones the request adds.
    static func securityGroup(_ parameters: [(key: String, value: String)], reader: AWSPreviewReader, lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let ec2 = lookup("ec2"), let id = value(parameters, "GroupId") else { return [] }
        guard let item = reader.query(ec2, "DescribeSecurityGroups", [("GroupId.1", id)])?.descendants("securityGroupInfo").first?.child("item") else { return [] }
        let rules = (item.child("ipPermissions")?.all("item") ?? []).map { rule -> String in
            let ranges = (rule.child("ipRanges")?.all("item") ?? []).compactMap { $0["cidrIp"] } + (rule.child("ipv6Ranges")?.all("item") ?? []).compactMap { $0["cidrIpv6"] }
            let ports = rule["fromPort"].map { from in from == rule["toPort"] ? from : "\(from)-\(rule["toPort"] ?? "")" } ?? "all"
            return "\(rule["ipProtocol"] ?? "?") \(ports) from \(ranges.isEmpty ? "groups" : ranges.joined(separator: ", "))"
        }
        return [PreviewResource(type: "AWS::EC2::SecurityGroup", id: id, name: item["groupName"],
                                tags: tags(item.child("tagSet"), item: "item", key: "key", value: "value"), retained: true,
                                details: [("ingress now", rules.isEmpty ? "none" : rules.joined(separator: "; "))])]
    }

    /// A database: deletion protection, the final snapshot (or none), backups, size.
    static func database(_ operation: String, _ parameters: [(key: String, value: String)], reader: AWSPreviewReader,
                         lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let rds = lookup("rds") else { return [] }
        let cluster = operation == "DeleteDBCluster"
        guard let id = value(parameters, cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier") else { return [] }
        guard let db = reader.query(rds, cluster ? "DescribeDBClusters" : "DescribeDBInstances",
                                    [(cluster ? "DBClusterIdentifier" : "DBInstanceIdentifier", id)])?
            .descendants(cluster ? "DBCluster" : "DBInstance").first else { return [] }
        let skip = value(parameters, "SkipFinalSnapshot") == "true"
        var details: [(key: String, value: String)] = [("status", db[cluster ? "Status" : "DBInstanceStatus"] ?? ""),
                                                        ("engine", db["Engine"] ?? ""),
                                                        ("deletion protection", db["DeletionProtection"] == "true" ? "on: the delete will fail" : "off"),
                                                        ("backups kept", "\(db["BackupRetentionPeriod"] ?? "?") days")]
        if operation != "ModifyDBInstance" {
            details.append(("final snapshot", skip ? "none (SkipFinalSnapshot)" : value(parameters, "FinalDBSnapshotIdentifier") ?? "required and not named"))
        }
        if let storage = db["AllocatedStorage"].flatMap({ Int($0) }) { details.append(("storage", "\(storage) GiB")) }
        return [PreviewResource(type: cluster ? "AWS::RDS::DBCluster" : "AWS::RDS::DBInstance", id: id, name: id,
                                bytes: db["AllocatedStorage"].flatMap { Int($0) }.map { $0 << 30 },
                                retained: operation == "ModifyDBInstance" || !skip, details: details)]
    }

    /// Route 53: each changed record set now, against what the change makes it.
    static func recordSets(_ pinned: PinnedRequest, reader: AWSPreviewReader, lookup: (String) -> AWSService?) {
        guard let route53 = lookup("route53"), let batch = try? XMLTree.parse(pinned.body) else { return }
        let zonePath = pinned.path.hasSuffix("/rrset") ? String(pinned.path.dropLast("/rrset".count)) : pinned.path.replacingOccurrences(of: "/rrset/", with: "")
        var old: [String] = []
        var new: [String] = []
        func line(_ set: XMLElement) -> String {
            let values = set.descendants("Value").map(\.text) + set.descendants("DNSName").map { "alias " + $0.text }
            return "\(withoutDot(set["Name"] ?? "")) \(set["Type"] ?? "") \(set["TTL"].map { "ttl \($0) " } ?? "")\(values.joined(separator: ", "))"
        }
        for change in batch.descendants("Change").prefix(20) {
            guard let set = change.child("ResourceRecordSet"), let name = set["Name"], let type = set["Type"] else { continue }
            if let response = reader.rest(route53, "ListResourceRecordSets", path: zonePath + "/rrset",
                                          query: "maxitems=1&name=\(PercentEncoding.encode(name))&type=\(PercentEncoding.encode(type))"),
               let listing = try? XMLTree.parse(response.body),
               let current = listing.descendants("ResourceRecordSet").first(where: { Self.withoutDot($0["Name"] ?? "") == Self.withoutDot(name) && $0["Type"] == type }) {
                old.append(line(current))
            }
            switch change["Action"] {
            case "DELETE": break
            default: new.append(line(set))
            }
        }
        reader.extra.append(("diff", .string(LineDiff.unified(old: old.joined(separator: "\n") + (old.isEmpty ? "" : "\n"),
                                                              new: new.joined(separator: "\n") + (new.isEmpty ? "" : "\n"),
                                                              oldName: "records now", newName: "after the change"))))
    }

    static func withoutDot(_ name: String) -> String { name.hasSuffix(".") ? String(name.dropLast()) : name }

    /// A bucket's policy, ACL or public access block now, against the request's.
    static func bucketSetting(_ operation: String, _ pinned: PinnedRequest, reader: AWSPreviewReader, lookup: (String) -> AWSService?) {
        guard let s3 = lookup("s3"), let bucket = pinned.path.dropFirst().split(separator: "/").first.map(String.init) else { return }
        let (query, read) = operation == "PutBucketPolicy" ? ("policy", "GetBucketPolicy")
            : operation == "PutBucketAcl" ? ("acl", "GetBucketAcl") : ("publicAccessBlock", "GetPublicAccessBlock")
        let now = reader.rest(s3, read, path: "/" + bucket, query: query).map { String(decoding: $0.body, as: UTF8.self) } ?? ""
        func pretty(_ text: String) -> String {
            if let json = try? JSON.parse(text) { return json.pretty() }
            guard let xml = try? XMLTree.parse(Array(text.utf8)) else { return text }
            func lines(_ element: XMLElement, _ depth: Int) -> [String] {
                let pad = String(repeating: "  ", count: depth)
                return element.children.isEmpty ? [pad + element.localName + ": " + element.text]
                    : [pad + element.localName + ":"] + element.children.flatMap { lines($0, depth + 1) }
            }
            return lines(xml, 0).joined(separator: "\n")
        }
        var proposed = pretty(String(decoding: pinned.body, as: UTF8.self))
        if let acl = pinned.header("x-amz-acl") { proposed = "canned ACL: \(acl)" }
        reader.extra.append(("diff", .string(LineDiff.unified(old: now.isEmpty ? "" : pretty(now) + "\n", new: proposed + "\n",
                                                              oldName: "\(query) now", newName: "proposed"))))
        if operation == "PutBucketPolicy" { flagWildcards(proposed, reader: reader) }
    }

    // MARK: EC2

    static func instances(_ parameters: [(key: String, value: String)], terminating: Bool, reader: AWSPreviewReader,
                          lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let ec2 = lookup("ec2") else { return [] }
        let ids = values(parameters, prefix: "InstanceId")
        guard !ids.isEmpty else { return [] }
        let described = reader.query(ec2, "DescribeInstances", ids.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) })
        var resources: [PreviewResource] = []
        for item in described?.descendants("instancesSet").flatMap({ $0.all("item") }) ?? [] {
            let id = item["instanceId"] ?? "?"
            let tagList = tags(item.child("tagSet"), item: "item", key: "key", value: "value")
            var details: [(key: String, value: String)] = [("state", item["instanceState/name"] ?? ""), ("type", item["instanceType"] ?? "")]
            let protection = reader.query(ec2, "DescribeInstanceAttribute", [("InstanceId", id), ("Attribute", "disableApiTermination")])
            if let value = protection?["disableApiTermination/value"] {
                details.append(("termination protection", value == "true" ? (terminating ? "on: the terminate will fail" : "on") : "off"))
            }
            var lostVolumes: [PreviewResource] = []
            for mapping in item.child("blockDeviceMapping")?.all("item") ?? [] {
                guard let volume = mapping["ebs/volumeId"] else { continue }
                let deleted = mapping["ebs/deleteOnTermination"] == "true"
                details.append(("volume " + volume, (mapping["deviceName"] ?? "") + (terminating ? (deleted ? ", deleted with the instance" : ", kept") : "")))
                if terminating {
                    lostVolumes.append(PreviewResource(type: "AWS::EC2::Volume", id: volume, retained: !deleted,
                                                       details: [("attached to", id), ("device", mapping["deviceName"] ?? "")]))
                }
            }
            resources.append(PreviewResource(type: "AWS::EC2::Instance", id: id, name: tagList.first { $0.key == "Name" }?.value,
                                             tags: tagList, retained: !terminating, details: details))
            resources += lostVolumes
        }
        return resources
    }

    static func volumes(_ parameters: [(key: String, value: String)], reader: AWSPreviewReader, lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let ec2 = lookup("ec2"), let id = value(parameters, "VolumeId") else { return [] }
        guard let item = reader.query(ec2, "DescribeVolumes", [("VolumeId.1", id)])?.descendants("volumeSet").first?.child("item") else { return [] }
        let tagList = tags(item.child("tagSet"), item: "item", key: "key", value: "value")
        let size = Int(item["size"] ?? "")
        var details: [(key: String, value: String)] = [("state", item["status"] ?? ""), ("size", size.map { "\($0) GiB" } ?? "?")]
        if let attached = item.child("attachmentSet")?.child("item")?["instanceId"] { details.append(("attached to", attached)) }
        return [PreviewResource(type: "AWS::EC2::Volume", id: id, name: tagList.first { $0.key == "Name" }?.value, tags: tagList,
                                bytes: size.map { $0 << 30 }, details: details)]
    }

    static func snapshots(_ parameters: [(key: String, value: String)], reader: AWSPreviewReader, lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let ec2 = lookup("ec2"), let id = value(parameters, "SnapshotId") else { return [] }
        guard let item = reader.query(ec2, "DescribeSnapshots", [("SnapshotId.1", id)])?.descendants("snapshotSet").first?.child("item") else { return [] }
        let tagList = tags(item.child("tagSet"), item: "item", key: "key", value: "value")
        let size = Int(item["volumeSize"] ?? "")
        return [PreviewResource(type: "AWS::EC2::Snapshot", id: id, name: tagList.first { $0.key == "Name" }?.value, tags: tagList,
                                bytes: size.map { $0 << 30 },
                                details: [("of volume", item["volumeId"] ?? ""), ("description", item["description"] ?? ""),
                                          ("size", size.map { "\($0) GiB" } ?? "?")])]
    }

    // MARK: S3

    static func s3(_ operation: String, _ pinned: PinnedRequest, reader: AWSPreviewReader, lookup: (String) -> AWSService?) -> [PreviewResource] {
        guard let s3 = lookup("s3") else { return [] }
        let parts = pinned.path.dropFirst().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let bucket = parts.first, !bucket.isEmpty else { return [] }
        let versioned = bucketVersioned(bucket, s3: s3, reader: reader)
        func object(_ key: String) -> PreviewResource {
            var resource = PreviewResource(type: "AWS::S3::Object", id: "s3://\(bucket)/\(key)", objects: 1, versioned: versioned)
            let path = "/" + bucket + "/" + key.split(separator: "/", omittingEmptySubsequences: false).map { PercentEncoding.encode(String($0)) }.joined(separator: "/")
            if let head = reader.rest(s3, "HeadObject", method: "HEAD", path: path) {
                resource.bytes = head.header("content-length").flatMap { Int($0) }
                if let etag = head.header("etag") { resource.details.append(("ETag", etag)) }
                if let modified = head.header("last-modified") { resource.details.append(("last modified", modified)) }
            } else {
                resource.objects = 0
                resource.details.append(("state", "not found or not readable"))
            }
            if versioned { resource.details.append(("versioning", "Enabled: earlier versions stay")) }
            return resource
        }
        switch operation {
        case "DeleteObject":
            guard parts.count == 2 else { return [] }
            return [object(PercentEncoding.decode(parts[1]))]
        case "DeleteObjects":
            let keys = ((try? XMLTree.parse(pinned.body))?.all("Object") ?? []).compactMap { $0["Key"] }
            if keys.count > 20 { reader.note("\(keys.count) keys: the first 20 are read") }
            return keys.prefix(20).map(object)
        default:  // DeleteBucket
            let (objects, bytes, complete) = bucketContents(bucket, s3: s3, reader: reader)
            var resource = PreviewResource(type: "AWS::S3::Bucket", id: bucket, name: bucket, objects: objects, bytes: bytes, versioned: versioned)
            if let response = reader.rest(s3, "GetBucketTagging", path: "/" + bucket, query: "tagging"), let xml = try? XMLTree.parse(response.body) {
                resource.tags = tags(xml.child("TagSet"), item: "Tag")
            }
            if !complete { resource.details.append(("contents", "at least (listing stopped)")) }
            if (objects ?? 0) > 0 { resource.details.append(("note", "S3 refuses to delete a bucket that is not empty")) }
            return [resource]
        }
    }
}
