import AirlockCore
import Testing

@testable import AirlockPolicy

/// "One reading or none": requests two parsers could read differently are refused, for every
/// protocol of the catalog. The rows are what an agent writes itself, not what an SDK sends;
/// the comments say which reading the upstream (moto, AWS) would take.
@Suite struct OneReadingTests {
    func ambiguity(_ service: String, _ method: String, _ target: String, headers: [(String, String)] = [],
                   body: String = "") throws -> String? {
        let catalog = try TestCatalog.load()
        let svc = try #require(catalog.services[service])
        let request = AWSRequest(method: method, target: target, headers: headers.map { (name: $0.0, value: $0.1) },
                                 body: Array(body.utf8))
        let classifier = AWSClassifier(overrides: catalog.overrides)
        return request.ambiguity(for: svc, servicePath: request.path, decidingQueryKeys: classifier.decidingQueryKeys(for: svc))
    }

    static let form = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    static func json(_ target: String, _ type: String = "application/x-amz-json-1.1") -> [(String, String)] {
        [("Content-Type", type), ("X-Amz-Target", target)]
    }

    @Test(arguments: [
        // json: moto keeps the last of duplicate keys; a first-wins reader would see a plain read.
        ("ssm", "POST", "/", json("AmazonSSM.GetParameter"), #"{"Name":"p","WithDecryption":false,"WithDecryption":true}"#, "appears twice"),
        ("ssm", "POST", "/", json("AmazonSSM.GetParameter"), #"{"Name":"p","Tags":{"a":1,"a":2}}"#, "appears twice"),
        ("dynamodb", "POST", "/", json("DynamoDB_20120810.Scan", "application/x-amz-json-1.0"), #"{"TableName":"t","TableName":"u"}"#, "appears twice"),
        // json: moto takes Action from the query string before X-Amz-Target.
        ("sqs", "POST", "/?Action=DeleteQueue&QueueUrl=q", json("AmazonSQS.ListQueues", "application/x-amz-json-1.0"), "{}", "not in a query string"),
        // json: a form body with a JSON target (moto picks the protocol by Content-Type).
        ("sqs", "POST", "/", [Self.form, ("X-Amz-Target", "AmazonSQS.ListQueues")], "Action=DeleteQueue&QueueUrl=q", "must have Content-Type application/x-amz-json"),
        ("ssm", "POST", "/", [("X-Amz-Target", "AmazonSSM.GetParameter")], #"{"Name":"p"}"#, "must have Content-Type"),
        // Two targets, two content types.
        ("ssm", "POST", "/", json("AmazonSSM.GetParameter") + [("x-amz-target", "AmazonSSM.PutParameter")], "{}", "appears more than once"),
        ("ssm", "POST", "/", json("AmazonSSM.GetParameter") + [("content-type", "application/x-www-form-urlencoded")], "{}", "appears more than once"),
        // A JSON body that is not UTF-8 or has a number some parsers refuse.
        ("ssm", "POST", "/", json("AmazonSSM.GetParameter"), "{\"Name\":\"p\",\"WithDecryption\":01}", "outside JSON's grammar"),
        // query: Action twice (moto takes the first; others the last), in URL and body.
        ("sts", "POST", "/", [Self.form], "Action=GetCallerIdentity&Action=AssumeRole&RoleArn=r", "Action appears more than once"),
        ("ec2", "POST", "/?Action=TerminateInstances", [Self.form], "Action=DescribeInstances", "both the URL and the body"),
        ("ec2", "POST", "/", [Self.form], "Action=DescribeInstances&Version=2016-11-15&Version=2013-10-15", "Version appears more than once"),
        ("sts", "POST", "/", [("Content-Type", "application/json")], "Action=AssumeRole&RoleArn=r", "must be application/x-www-form-urlencoded"),
        ("sts", "PUT", "/", [Self.form], "Action=AssumeRole", "has a body"),
        ("ec2", "POST", "/", [Self.form, ("X-Amz-Target", "x.DescribeInstances")], "Action=TerminateInstances", "X-Amz-Target is not part"),
        // rest: an Action the upstream might prefer, a target, path normalization tricks.
        ("lambda", "GET", "/2015-03-31/functions?Action=DeleteFunction", [], "", "Action parameter is not part"),
        ("lambda", "GET", "/2015-03-31/functions", [("X-Amz-Target", "AWSLambda.DeleteFunction")], "", "X-Amz-Target is not part"),
        ("lambda", "GET", "/2015-03-31/functions/f/../../functions/g", [], "", "has a .. segment"),
        ("lambda", "GET", "/2015-03-31/functions/%2E%2E/g", [], "", "has a .. segment"),
        ("lambda", "GET", "/2015-03-31/./functions", [], "", "has a . segment"),
        ("lambda", "GET", "/2015-03-31//functions", [], "", "empty segment"),
        ("apigateway", "GET", "/apikeys/k?includeValue=false&includeValue=true", [], "", "includeValue appears more than once"),
        ("s3", "GET", "/b/k?uploadId=1&uploadId=2", [], "", "uploadId appears more than once"),
        ("lambda", "POST", "/2015-03-31/functions", [("Content-Type", "application/json")], #"{"FunctionName":"a","FunctionName":"b"}"#, "appears twice"),
        // Methods are case-sensitive; SigV4 signs them upper-cased (found by scripts/fuzz).
        ("lambda", "GEt", "/2015-03-31/functions", [], "", "is not one AWS APIs use"),
        ("sts", "post", "/", [Self.form], "Action=GetCallerIdentity", "is not one AWS APIs use"),
        // cbor: a target on a CBOR path, a wrong service in the path, no protocol header.
        ("arc-region-switch", "POST", "/service/ArcRegionSwitch/operation/ListPlans",
         [("X-Amz-Target", "ArcRegionSwitch.DeletePlan"), ("Content-Type", "application/x-amz-json-1.0")], "", "both X-Amz-Target and a CBOR operation path"),
    ])
    func refused(_ service: String, _ method: String, _ target: String, _ headers: [(String, String)], _ body: String, _ words: String) throws {
        let why = try ambiguity(service, method, target, headers: headers, body: body)
        #expect(why?.contains(words) == true, "\(service) \(method) \(target): \(why ?? "accepted")")
    }

    @Test func whatSDKsSendIsAccepted() throws {
        #expect(try ambiguity("ssm", "POST", "/", headers: Self.json("AmazonSSM.GetParameter"), body: #"{"Name":"p","WithDecryption":true}"#) == nil)
        #expect(try ambiguity("sts", "POST", "/", headers: [Self.form], body: "Action=GetCallerIdentity&Version=2011-06-15") == nil)
        #expect(try ambiguity("ec2", "GET", "/?Action=DescribeRegions&Version=2016-11-15") == nil)
        #expect(try ambiguity("sqs", "POST", "/", headers: [Self.form], body: "Action=ListQueues") == nil)
        #expect(try ambiguity("lambda", "GET", "/2015-03-31/functions/") == nil)
        // S3 keys may hold anything: // and .. are part of the key, not the path.
        #expect(try ambiguity("s3", "GET", "/b/a//../k") == nil)
        // Repeated list members of a REST query are one reading.
        #expect(try ambiguity("resourcegroupstaggingapi", "POST", "/", headers: Self.json("ResourceGroupsTaggingAPI_20170126.GetResources"), body: "{}") == nil)
    }

    /// JSON services newer SDKs also reach over rpc-v2-cbor (no X-Amz-Target; the operation
    /// in the path): the path must name this service and the protocol header be there.
    @Test func cborNeedsItsProtocolAndItsOwnServicePath() throws {
        let catalog = try TestCatalog.load()
        let service = try #require(catalog.services["arc-region-switch"])
        let prefix = try #require(service.targetPrefix)
        let path = "/service/\(prefix)/operation/ListPlans"
        let cbor = [("smithy-protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor")]
        #expect(try ambiguity("arc-region-switch", "POST", path, headers: cbor) == nil)
        #expect(try ambiguity("arc-region-switch", "POST", path)?.contains("smithy-protocol") == true)
        #expect(try ambiguity("arc-region-switch", "POST", "/service/Other/operation/ListPlans", headers: cbor)?.contains("names service Other") == true)
        #expect(try ambiguity("arc-region-switch", "POST", path + "?Action=X", headers: cbor)?.contains("Action") == true)
        #expect(try ambiguity("arc-region-switch", "POST", path, headers: cbor + [("Content-Type", "application/cbor")])?.contains("more than once") == true)
    }

    @Test(arguments: [("us-east-1", true), ("us-gov-west-1", true), ("eu-isoe-west-1", true), ("ap-southeast-5", true),
                      ("us-isob-east-1", true), ("cn-north-1", true), ("eusc-de-east-1", true),
                      ("us-east-1.evil.example", false), ("us-east-1/x", false), ("", false), ("US-EAST-1", false),
                      ("us-east", false), ("aws-global", false), ("us-east-1-", false), ("x-y-100", false), ("u-east-1", false)])
    func regions(_ name: String, _ valid: Bool) {
        #expect(AWSRegion.isValidName(name) == valid, "\(name)")
    }

    /// Every region botocore knows is a valid name.
    @Test func everyRegionOfTheCatalogIsValid() throws {
        let catalog = try TestCatalog.load()
        _ = catalog
        for region in ["af-south-1", "ap-east-1", "ap-northeast-3", "ap-south-2", "ca-west-1", "eu-central-2", "il-central-1",
                       "me-central-1", "mx-central-1", "sa-east-1", "us-west-2", "ap-southeast-7", "cn-northwest-1", "us-iso-west-1"] {
            #expect(AWSRegion.isValidName(region), "\(region)")
        }
    }
}

/// `when:` conditions fail closed: present with any value but a literal false counts as set.
@Suite struct FailClosedConditionTests {
    func decision(_ service: String, _ method: String, _ target: String, headers: [(String, String)] = [], body: String = "") throws -> Decision {
        let catalog = try TestCatalog.load()
        let svc = try #require(catalog.services[service])
        let request = AWSRequest(method: method, target: target, headers: headers.map { (name: $0.0, value: $0.1) }, body: Array(body.utf8))
        return AWSClassifier(overrides: catalog.overrides).classify(request, service: svc, servicePath: request.path).ruling.decision
    }

    static let ssm = [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "AmazonSSM.GetParameter")]

    @Test(arguments: [
        (#"{"Name":"p"}"#, Decision.read), (#"{"Name":"p","WithDecryption":false}"#, .read),
        (#"{"Name":"p","WithDecryption":true}"#, .sensitive), (#"{"Name":"p","WithDecryption":1}"#, .sensitive),
        (#"{"Name":"p","WithDecryption":0}"#, .sensitive), (#"{"Name":"p","WithDecryption":"false"}"#, .sensitive),
        (#"{"Name":"p","WithDecryption":null}"#, .sensitive), (#"{"Name":"p","withdecryption":true}"#, .sensitive),
        (#"{"Name":"p","WithDecryption":{}}"#, .sensitive), (#"{"Name":"p","With\u0044ecryption":true}"#, .sensitive),
        (#"{"Name":"p","WithDecryption":false,"WithDecryption":true}"#, .sensitive), ("not json", .sensitive),
    ])
    func ssmGetParameter(_ body: String, _ expected: Decision) throws {
        #expect(try decision("ssm", "POST", "/", headers: Self.ssm, body: body) == expected, "\(body)")
    }

    @Test(arguments: [("/apikeys/k", Decision.read), ("/apikeys/k?includeValue=false", .read), ("/apikeys/k?includeValue=true", .sensitive),
                      ("/apikeys/k?includeValue=1", .sensitive), ("/apikeys/k?includeValue", .sensitive), ("/apikeys/k?includeValue=FALSE", .sensitive),
                      ("/apikeys/k?includevalue=true", .sensitive)])
    func apiGatewayKey(_ target: String, _ expected: Decision) throws {
        #expect(try decision("apigateway", "GET", target) == expected, "\(target)")
    }
}

/// AWS host names reached through the proxy: the service from the signature, S3's bucket
/// from a virtual-hosted name, one way or refused.
@Suite struct AWSHostRouteTests {
    typealias Route = AWSHostRoute.Outcome

    @Test(arguments: [
        ("s3.amazonaws.com", "/b/k", Route.service("s3", path: "/b/k")),
        ("s3.us-east-1.amazonaws.com", "/", Route.service("s3", path: "/")),
        ("reports.s3.us-east-1.amazonaws.com", "/2026/q1.txt", Route.service("s3", path: "/reports/2026/q1.txt")),
        ("reports.s3.amazonaws.com", "/", Route.service("s3", path: "/reports")),
        ("my.dotted.bucket.s3.dualstack.eu-west-1.amazonaws.com", "/k", Route.service("s3", path: "/my.dotted.bucket/k")),
        ("legacy.s3-us-west-2.amazonaws.com", "/k", Route.service("s3", path: "/legacy/k")),
        ("cnbucket.s3.cn-north-1.amazonaws.com.cn", "/k", Route.service("s3", path: "/cnbucket/k")),
    ])
    func s3Hosts(_ host: String, _ path: String, _ expected: Route) {
        #expect(AWSHostRoute.route(host: host, path: path, signingName: "s3", candidates: [], version: nil) == expected)
    }

    @Test(arguments: ["Bad_Bucket.s3.amazonaws.com", "ab.s3.amazonaws.com", "192.168.1.1.s3.amazonaws.com", "a..b.s3.amazonaws.com",
                      "ap-123456789012.s3-accesspoint.us-east-1.amazonaws.com", "b.s3.evil-label.amazonaws.com", "b.s3express-use1-az4.us-east-1.amazonaws.com"])
    func s3HostsThatAreRefused(_ host: String) {
        guard case .refused = AWSHostRoute.route(host: host, path: "/k", signingName: "s3", candidates: [], version: nil) else {
            Issue.record("\(host) was accepted")
            return
        }
    }

    @Test func sharedSigningNamesAreNarrowedByHostAndVersion() {
        let elb = [(name: "elb", endpointPrefix: "elasticloadbalancing", apiVersion: "2012-06-01"),
                   (name: "elbv2", endpointPrefix: "elasticloadbalancing", apiVersion: "2015-12-01")]
        #expect(AWSHostRoute.route(host: "elasticloadbalancing.us-east-1.amazonaws.com", path: "/", signingName: "elasticloadbalancing",
                                   candidates: elb, version: "2015-12-01") == .service("elbv2", path: "/"))
        guard case .refused = AWSHostRoute.route(host: "elasticloadbalancing.us-east-1.amazonaws.com", path: "/",
                                                 signingName: "elasticloadbalancing", candidates: elb, version: nil) else {
            Issue.record("an ambiguous service was chosen")
            return
        }
        #expect(AWSHostRoute.route(host: "queue.amazonaws.com", path: "/", signingName: "sqs",
                                   candidates: [(name: "sqs", endpointPrefix: "sqs", apiVersion: "2012-11-05")], version: nil) == .service("sqs", path: "/"))
        guard case .refused = AWSHostRoute.route(host: "sqs.amazonaws.com", path: "/", signingName: nil, candidates: [], version: nil) else {
            Issue.record("an unsigned request was routed")
            return
        }
    }

    /// The aws CLI sends rds, docdb and neptune calls to `rds.amazonaws.com`: one endpoint,
    /// one API version, one signing name. RDS owns it; a service of another signing name or
    /// another endpoint prefix is never picked that way.
    @Test func servicesOnRDSEndpointAreRDS() {
        let family = [(name: "docdb", endpointPrefix: "rds", apiVersion: "2014-10-31"),
                      (name: "neptune", endpointPrefix: "rds", apiVersion: "2014-10-31"),
                      (name: "rds", endpointPrefix: "rds", apiVersion: "2014-10-31")]
        for host in ["rds.amazonaws.com", "rds.us-east-1.amazonaws.com"] {
            #expect(AWSHostRoute.route(host: host, path: "/", signingName: "rds", candidates: family, version: "2014-10-31")
                    == .service("rds", path: "/"))
        }
        // No owner among the candidates (a signing name no one of them is named for): refused.
        let strangers = [(name: "a", endpointPrefix: "x", apiVersion: "1"), (name: "b", endpointPrefix: "x", apiVersion: "1")]
        guard case .refused = AWSHostRoute.route(host: "x.amazonaws.com", path: "/", signingName: "x", candidates: strangers, version: "1") else {
            Issue.record("a shared endpoint without an owner was routed")
            return
        }
    }

    @Test func refusalsOfUnknownServicesAreShapedAsTheRequestLooks() {
        #expect(AWSProtocol.guess(contentType: "application/x-www-form-urlencoded; charset=utf-8", target: nil,
                                  body: Array("Action=DescribeDBParameterGroups&Version=2014-10-31".utf8)) == .query)
        #expect(AWSProtocol.guess(contentType: "application/x-www-form-urlencoded", target: nil,
                                  body: Array("Version=1&Action=X".utf8)) == .query)
        #expect(AWSProtocol.guess(contentType: "application/x-amz-json-1.0", target: "DynamoDB_20120810.ListTables", body: []) == .json)
        #expect(AWSProtocol.guess(contentType: nil, target: nil, body: []) == .restXML)
        #expect(AWSProtocol.guess(contentType: "application/x-www-form-urlencoded", target: nil, body: Array("a=b".utf8)) == .restXML)
    }
}
