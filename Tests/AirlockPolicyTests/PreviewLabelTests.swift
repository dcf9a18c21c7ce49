import AirlockCore
@testable import AirlockPolicy
import Testing

/// The XML reader the effect previews parse AWS answers with, and the risk labels (pure:
/// operation + parameters + preview facts → labels), by table (docs/previews.md).
@Suite struct XMLTreeTests {
    @Test func readsAWSAnswers() throws {
        let text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
              <!-- a comment -->
              <DescribeStacksResult><Stacks><member>
                <StackName>prod &amp; co</StackName><Tags><member><Key>env</Key><Value>prod</Value></member></Tags>
                <Description><![CDATA[a <raw> text]]></Description><Empty/><Code>&#65;&#x42;</Code>
              </member></Stacks></DescribeStacksResult>
            </DescribeStacksResponse>
            """
        let root = try XMLTree.parse(Array(text.utf8))
        let stack = try #require(root.element("DescribeStacksResult/Stacks/member"))
        #expect(stack["StackName"] == "prod & co")
        #expect(stack["Description"] == "a <raw> text")
        #expect(stack["Code"] == "AB")
        #expect(stack.child("Empty")?.text == "")
        #expect(stack.element("Tags")?.all("member").count == 1)
        #expect(root.descendants("Value").map(\.text) == ["prod"])
    }

    @Test(arguments: ["<a><b></a>", "<a>", "text<a/>", "<a/><b/>", "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a>&unknown;</a>", "",
                      "<a><!-- never ends", "</a>"])
    func malformedIsRefused(_ text: String) {
        #expect(throws: XMLTree.Invalid.self) { try XMLTree.parse(Array(text.utf8)) }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        #expect(throws: XMLTree.Invalid.self) { try XMLTree.parse(Array(deep.utf8)) }
    }
}

@Suite struct RiskLabelTests {
    static let bucket = PreviewResource(type: "AWS::S3::Bucket", id: "data", name: "data", objects: 3, bytes: 3000)
    static let retained = PreviewResource(type: "AWS::DynamoDB::Table", id: "t", name: "T", items: 4, retained: true)
    static let emptyQueue = PreviewResource(type: "AWS::SQS::Queue", id: "https://q/1/x", name: "Q", messages: 0)
    static let prodStack = PreviewResource(type: "AWS::CloudFormation::Stack", id: "arn:stack/app", name: "app", tags: [("env", "prod")])
    static let versionedObject = PreviewResource(type: "AWS::S3::Object", id: "s3://b/k", objects: 1, bytes: 10, versioned: true)

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var service: String
        var operation: String
        var parameters: [(key: String, value: String)] = []
        var resources: [PreviewResource] = []
        var labels: [RiskLabel]
        var reason: String? = nil
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "a read-like create labels nothing", service: "sns", operation: "CreateTopic", parameters: [("Name", "alerts")], labels: []),
        Row(name: "an upload granting another account", service: "s3", operation: "PutObject",
            parameters: [("x-amz-grant-read", "id=79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be")], labels: [.permissions]),
        Row(name: "an upload encrypted with a named KMS key", service: "s3", operation: "PutObject",
            parameters: [("x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:999999999999:key/x")], labels: [.permissions]),
        Row(name: "an upload locked in compliance mode", service: "s3", operation: "PutObject",
            parameters: [("x-amz-object-lock-mode", "COMPLIANCE")], labels: [.irreversible]),
        Row(name: "a plain upload labels nothing", service: "s3", operation: "PutObject", parameters: [("x-amz-object-lock-mode", "GOVERNANCE")], labels: []),
        Row(name: "delete with nothing read: destructive only", service: "sqs", operation: "DeleteQueue", labels: [.destructive]),
        Row(name: "a stack holding data", service: "cloudformation", operation: "DeleteStack", parameters: [("StackName", "app")],
            resources: [bucket, emptyQueue], labels: [.destructive, .irreversible, .dataLoss], reason: "data (AWS::S3::Bucket) holds 3 objects, 2.9 KiB"),
        Row(name: "retained resources are not lost", service: "cloudformation", operation: "DeleteStack", resources: [retained],
            labels: [.destructive]),
        Row(name: "tagged production", service: "cloudformation", operation: "DeleteStack", parameters: [("StackName", "app")],
            resources: [prodStack], labels: [.destructive, .irreversible, .production], reason: "app is tagged env=prod"),
        Row(name: "named production", service: "ec2", operation: "TerminateInstances", parameters: [("InstanceId.1", "i-1")],
            resources: [PreviewResource(type: "AWS::EC2::Instance", id: "i-1", name: "web-prod-1")],
            labels: [.destructive, .irreversible, .production], reason: "web-prod-1 is named as production"),
        Row(name: "'product' is not production", service: "s3", operation: "PutObject", parameters: [("Bucket", "product-images")], labels: []),
        Row(name: "versioned objects stay", service: "s3", operation: "DeleteObject", resources: [versionedObject], labels: [.destructive]),
        Row(name: "a policy grant", service: "iam", operation: "PutUserPolicy", labels: [.permissions]),
        Row(name: "an access key", service: "iam", operation: "CreateAccessKey", labels: [.permissions]),
        Row(name: "an IAM read-like change is not a grant", service: "iam", operation: "TagUser", labels: []),
        Row(name: "ingress from anywhere", service: "ec2", operation: "AuthorizeSecurityGroupIngress",
            parameters: [("IpPermissions.1.FromPort", "22"), ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0")],
            labels: [.publicExposure], reason: "opens port 22 to 0.0.0.0/0, the whole internet"),
        Row(name: "ingress from a network", service: "ec2", operation: "AuthorizeSecurityGroupIngress",
            parameters: [("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8")], labels: []),
        Row(name: "public canned ACL", service: "s3", operation: "PutBucketAcl", parameters: [("x-amz-acl", "public-read")], labels: [.publicExposure]),
        Row(name: "public access block off", service: "s3", operation: "PutPublicAccessBlock", parameters: [("BlockPublicAcls", "false")],
            labels: [.publicExposure]),
        Row(name: "a policy for everyone", service: "s3", operation: "PutBucketPolicy",
            parameters: [("policy", #"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#)], labels: [.publicExposure]),
        Row(name: "instances cost", service: "ec2", operation: "RunInstances", parameters: [("MaxCount", "20"), ("InstanceType", "p4d.24xlarge")],
            labels: [.cost], reason: "20 instances of p4d.24xlarge"),
    ]

    @Test(arguments: rows)
    func labels(_ row: Row) {
        let risks = RiskLabels.assess(service: row.service, operation: row.operation, parameters: row.parameters, resources: row.resources)
        #expect(risks.map(\.label) == row.labels, "\(risks)")
        if let reason = row.reason {
            #expect(risks.contains { $0.reason == reason }, "\(risks.map(\.reason))")
        }
    }

    @Test func productionAccounts() {
        let risks = RiskLabels.assess(service: "sqs", operation: "PurgeQueue", parameters: [], resources: [], account: "111122223333",
                                      productionAccounts: ["111122223333"])
        #expect(risks.map(\.label) == [.destructive, .production])
    }

    @Test func resourcesRoundTripAsJSON() {
        for resource in [Self.bucket, Self.retained, Self.prodStack, Self.versionedObject] {
            #expect(PreviewResource(json: resource.json) == resource)
        }
    }
}

@Suite struct ChangeSetAndDriftTests {
    static func member(_ id: String, _ service: String, _ operation: String, _ parameters: [(String, String)]) -> ChangeSets.Member {
        ChangeSets.Member(id: id, service: service, operation: operation, parameters: parameters.map { (key: $0.0, value: $0.1) })
    }

    @Test func recreatesPairADeleteWithACreateOfTheSameResource() {
        let delete = Self.member("d1", "cloudformation", "DeleteStack", [("StackName", "prod")])
        let create = Self.member("c1", "cloudformation", "CreateStack", [("StackName", "prod"), ("TemplateBody", "{}")])
        let other = Self.member("c2", "cloudformation", "CreateStack", [("StackName", "staging")])
        let update = Self.member("u1", "cloudformation", "UpdateStack", [("StackName", "prod")])
        #expect(ChangeSets.recreates(delete, among: [delete, create, other, update]).map(\.id) == ["c1"])
        #expect(ChangeSets.recreates(create, among: [delete, create, other]).map(\.id) == ["d1"])
        #expect(ChangeSets.recreates(other, among: [delete, create, other]).isEmpty)
        // A queue deleted by URL and created by name; another service's "prod" is another resource.
        let deleteQueue = Self.member("q1", "sqs", "DeleteQueue", [("QueueUrl", "https://sqs.us-east-1.amazonaws.com/123/jobs")])
        let createQueue = Self.member("q2", "sqs", "CreateQueue", [("QueueName", "jobs")])
        let bucket = Self.member("b1", "s3", "CreateBucket", [("Bucket", "prod")])
        #expect(ChangeSets.recreates(deleteQueue, among: [createQueue, bucket]).map(\.id) == ["q2"])
        #expect(ChangeSets.recreates(bucket, among: [delete]).isEmpty)
    }

    @Test func driftIsTheResourcesAndTheirIdentityNotApproximateCounts() {
        let object = PreviewResource(type: "AWS::S3::Object", id: "s3://b/k", objects: 1, bytes: 12, details: [("ETag", "\"a\"")])
        let queue = PreviewResource(type: "AWS::SQS::Queue", id: "q", messages: 5)
        #expect(PreviewDrift.changes(shown: [object, queue], now: [object, queue]).isEmpty)
        var busier = queue
        busier.messages = 500
        #expect(PreviewDrift.changes(shown: [queue], now: [busier]).isEmpty, "a live queue's count moves on its own")
        var rewritten = object
        rewritten.bytes = 20
        rewritten.details = [("ETag", "\"b\"")]
        #expect(PreviewDrift.changes(shown: [object], now: [rewritten]) == ["AWS::S3::Object s3://b/k: bytes 12 → 20", "AWS::S3::Object s3://b/k: ETag \"a\" → \"b\""])
        let added = PreviewResource(type: "AWS::SQS::Queue", id: "q2")
        #expect(PreviewDrift.changes(shown: [queue], now: [queue, added]) == ["added: AWS::SQS::Queue q2"])
        #expect(PreviewDrift.changes(shown: [queue, added], now: [queue]) == ["gone: AWS::SQS::Queue q2"])
        var unprotected = PreviewResource(type: "AWS::EC2::Instance", id: "i-1", details: [("termination protection", "on")])
        let protected = unprotected
        unprotected.details = [("termination protection", "off")]
        #expect(PreviewDrift.changes(shown: [protected], now: [unprotected]).count == 1)
    }
}
