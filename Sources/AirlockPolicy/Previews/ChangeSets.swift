/// Related proposals shown together (docs/previews.md, "Change sets"): a session's delete and
/// create of the same resource is a *recreate*, the seed incident of this project (an agent
/// deleting a production stack to create it again). Pure: operations and parameters in,
/// relations out.
public enum ChangeSets {
    public struct Member: Sendable {
        public var id: String
        public var service: String
        public var operation: String
        public var parameters: [(key: String, value: String)]

        public init(id: String, service: String, operation: String, parameters: [(key: String, value: String)]) {
            self.id = id
            self.service = service
            self.operation = operation
            self.parameters = parameters
        }
    }

    /// Parameters that name the resource an operation creates or deletes.
    static let nameKeys = ["StackName", "Bucket", "QueueName", "QueueUrl", "TableName", "FunctionName", "DBInstanceIdentifier",
                           "DBClusterIdentifier", "RoleName", "UserName", "GroupName", "PolicyName", "TopicArn", "Name", "LogGroupName",
                           "ClusterName", "RepositoryName", "SecretId", "KeyName", "DomainName"]

    /// The resource a Create/Delete operation names: (service, noun, name). A queue URL and a
    /// topic ARN count by their last part, as the create names them.
    public static func target(_ member: Member) -> (verb: String, key: String)? {
        let verbs = ["Delete", "Create"]
        guard let verb = verbs.first(where: { member.operation.hasPrefix($0) }) else { return nil }
        let noun = String(member.operation.dropFirst(verb.count))
        guard !noun.isEmpty, let name = nameKeys.lazy.compactMap({ key in member.parameters.first { $0.key == key }?.value }).first,
              !name.isEmpty else { return nil }
        var last = name
        if name.contains("/") { last = String(name.split(separator: "/").last ?? Substring(name)) }
        if name.hasPrefix("arn:") { last = String(name.split(separator: ":").last ?? Substring(name)) }
        return (verb, "\(member.service):\(noun):\(last)")
    }

    /// The members that recreate `member` with it: a Delete and a Create of the same resource
    /// in one session, whichever came first.
    public static func recreates(_ member: Member, among others: [Member]) -> [Member] {
        guard let mine = target(member) else { return [] }
        return others.filter { other in
            guard other.id != member.id, let theirs = target(other) else { return false }
            return theirs.key == mine.key && theirs.verb != mine.verb
        }
    }
}
