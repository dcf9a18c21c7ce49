import Testing

@testable import AirlockPolicy

/// Requests as the AWS CLI sends them, classified through the committed catalog.
@Suite struct AWSClassifierTests {
    func classify(_ service: String, _ method: String, _ target: String, headers: [(String, String)] = [],
                  body: String = "") throws -> AWSClassifier.Classification {
        let catalog = try TestCatalog.load()
        let svc = try #require(catalog.services[service])
        let request = AWSRequest(method: method, target: target, headers: headers.map { (name: $0.0, value: $0.1) },
                                 body: Array(body.utf8))
        let path = String(request.path)
        return AWSClassifier(overrides: catalog.overrides).classify(request, service: svc, servicePath: path)
    }

    let form = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]

    func json(_ target: String) -> [(String, String)] {
        [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", target)]
    }

    @Test func queryProtocol() throws {
        #expect(try classify("ec2", "POST", "/", headers: form, body: "Action=DescribeInstances&Version=2016-11-15").ruling.decision == .read)
        let run = try classify("ec2", "POST", "/", headers: form, body: "Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1")
        #expect(run.ruling.decision == .mutation)
        #expect(run.ruling.rule == "IAM access level Write (ec2:RunInstances)")
        #expect(try classify("ec2", "POST", "/", headers: form, body: "Action=TerminateInstances&InstanceId.1=i-1").ruling.decision == .mutation)
        #expect(try classify("ec2", "POST", "/", headers: form, body: "Action=GetPasswordData&InstanceId=i-1").ruling.decision == .sensitive)
        #expect(try classify("sts", "POST", "/", headers: form, body: "Action=GetCallerIdentity&Version=2011-06-15").ruling.decision == .read)
        #expect(try classify("sts", "POST", "/", headers: form, body: "Action=AssumeRole&RoleArn=x").ruling.decision == .sensitive)
        #expect(try classify("iam", "POST", "/", headers: form, body: "Action=CreateAccessKey&UserName=u").ruling.decision == .sensitive)
        #expect(try classify("cloudformation", "POST", "/", headers: form, body: "Action=DescribeStacks").ruling.decision == .read)
        #expect(try classify("cloudformation", "POST", "/", headers: form, body: "Action=DeleteStack&StackName=prod").ruling.decision == .mutation)
        // GET with the action in the query string.
        #expect(try classify("ec2", "GET", "/?Action=DescribeRegions&Version=2016-11-15").ruling.decision == .read)
    }

    @Test func jsonProtocol() throws {
        #expect(try classify("dynamodb", "POST", "/", headers: json("DynamoDB_20120810.Scan"), body: "{}").ruling.decision == .read)
        #expect(try classify("dynamodb", "POST", "/", headers: json("DynamoDB_20120810.PutItem"), body: "{}").ruling.decision == .mutation)
        #expect(try classify("secretsmanager", "POST", "/", headers: json("secretsmanager.GetSecretValue"), body: "{}").ruling.decision == .sensitive)
        #expect(try classify("kms", "POST", "/", headers: json("TrentService.Decrypt"), body: "{}").ruling.decision == .sensitive)
        #expect(try classify("ecr", "POST", "/", headers: json("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"), body: "{}").ruling.decision == .sensitive)
        #expect(try classify("cloudtrail", "POST", "/", headers: json("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.StopLogging"), body: "{}").ruling.decision == .deny)
    }

    /// ssm:GetParameter is a plain read unless it decrypts.
    @Test func conditionalSensitivity() throws {
        let plain = try classify("ssm", "POST", "/", headers: json("AmazonSSM.GetParameter"), body: #"{"Name": "x"}"#)
        #expect(plain.ruling.decision == .read)
        let decrypt = try classify("ssm", "POST", "/", headers: json("AmazonSSM.GetParameter"), body: #"{"Name": "x", "WithDecryption": true}"#)
        #expect(decrypt.ruling.decision == .sensitive)
        #expect(decrypt.ruling.rule.contains("WithDecryption set"))
        // A body that cannot be read is treated as decrypting.
        #expect(try classify("ssm", "POST", "/", headers: json("AmazonSSM.GetParameter"), body: "{not json").ruling.decision == .sensitive)
    }

    @Test func restXMLS3() throws {
        #expect(try classify("s3", "GET", "/").operation == "ListBuckets" || classify("s3", "GET", "/").operation == "ListDirectoryBuckets")
        #expect(try classify("s3", "GET", "/b?list-type=2").operation == "ListObjectsV2")
        #expect(try classify("s3", "GET", "/b").operation == "ListObjects")
        #expect(try classify("s3", "GET", "/b/dir/key.txt").operation == "GetObject")
        #expect(try classify("s3", "HEAD", "/b/k").operation == "HeadObject")
        #expect(try classify("s3", "PUT", "/b/k").operation == "PutObject")
        #expect(try classify("s3", "PUT", "/b/k", headers: [("x-amz-copy-source", "/a/b")]).operation == "CopyObject")
        #expect(try classify("s3", "POST", "/b/k?uploads").operation == "CreateMultipartUpload")
        #expect(try classify("s3", "PUT", "/b/k?partNumber=1&uploadId=u").operation == "UploadPart")
        #expect(try classify("s3", "PUT", "/b/k?partNumber=1&uploadId=u", headers: [("x-amz-copy-source", "/a/b")]).operation == "UploadPartCopy")
        #expect(try classify("s3", "GET", "/b/k?uploadId=u").operation == "ListParts")
        #expect(try classify("s3", "GET", "/b?analytics").operation == "ListBucketAnalyticsConfigurations")
        #expect(try classify("s3", "GET", "/b?analytics&id=x").operation == "GetBucketAnalyticsConfiguration")
        #expect(try classify("s3", "DELETE", "/b/k").ruling.decision == .mutation)
        #expect(try classify("s3", "PUT", "/b").operation == "CreateBucket")
        #expect(try classify("s3", "GET", "/b/k").ruling.decision == .read)
    }

    @Test func unknownMeansMutation() throws {
        let unknown = try classify("ec2", "POST", "/", headers: form, body: "Action=LaunchTheMissiles")
        #expect(unknown.ruling.decision == .mutation)
        #expect(unknown.ruling.rule.contains("unknown means mutation"))
        #expect(try classify("ec2", "POST", "/", headers: form, body: "Version=2016-11-15").ruling.decision == .mutation)
        #expect(try classify("dynamodb", "POST", "/", headers: json("Other_2012.Scan")).ruling.decision == .mutation)
        #expect(try classify("s3", "PATCH", "/b/k").ruling.decision == .mutation)
    }

    @Test func ambiguousTakesTheMostPrivileged() throws {
        // GET /b?lifecycle is GetBucketLifecycle or GetBucketLifecycleConfiguration: both reads.
        let lifecycle = try classify("s3", "GET", "/b?lifecycle")
        if case .ambiguous(let candidates) = lifecycle.resolution {
            #expect(candidates.count == 2)
            #expect(lifecycle.ruling.rule.hasPrefix("ambiguous request"))
        } else {
            Issue.record("expected an ambiguous match, got \(lifecycle.resolution)")
        }
        #expect(lifecycle.ruling.decision == .read)
    }

    @Test func decisionsAreOrderedByPrivilege() {
        #expect(Decision.read < .mutation && Decision.mutation < .sensitive && Decision.sensitive < .deny)
        #expect(Decision.allCases.filter(\.needsApproval) == [.mutation, .sensitive])
    }
}

@Suite struct SigV4Tests {
    /// The example from AWS's SigV4 documentation (IAM ListUsers with the documentation's
    /// example key), computed independently of Airlock.
    @Test func documentationExample() throws {
        let request = AWSRequest(
            method: "GET", target: "/?Action=ListUsers&Version=2010-05-08",
            headers: [("Host", "iam.amazonaws.com"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                      ("X-Amz-Date", "20150830T123600Z")].map { (name: $0.0, value: $0.1) }, body: [])
        let canonical = SigV4.canonicalRequest(
            method: "GET", path: request.path, query: request.query, headers: request.headers,
            signedHeaders: ["content-type", "host", "x-amz-date"], payloadHash: SigV4.hexSHA256([]),
            uriEncodedTwice: true, excludeQueryKey: nil)
        #expect(SigV4.hexSHA256(Array(canonical.utf8)) == "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
        let key = SigV4.signingKey(secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date: "20150830", region: "us-east-1", service: "iam")
        let signature = SigV4.sign(canonicalRequest: canonical, timestamp: "20150830T123600Z",
                                   scope: "20150830/us-east-1/iam/aws4_request", key: key)
        #expect(signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
    }

    @Test func signThenVerifyRoundTrip() throws {
        let credentials = SigV4.Credentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret/with+chars")
        let body = Array("Action=DescribeInstances&Version=2016-11-15".utf8)
        let headers = SigV4.signedHeaders(
            method: "POST", path: "/svc/ec2/", query: "", host: "127.0.0.1:8181",
            headers: [("Content-Type", "application/x-www-form-urlencoded")], payloadHash: SigV4.hexSHA256(body),
            credentials: credentials, region: "eu-west-1", service: "ec2", timestamp: "20260101T000000Z",
            uriEncodedTwice: true)
        let request = AWSRequest(method: "POST", target: "/svc/ec2/", headers: headers, body: body)
        let signature = try SigV4.parse(request)
        #expect(signature.region == "eu-west-1" && signature.service == "ec2" && signature.accessKeyID == "AKIDTEST")
        try SigV4.verify(request, signature: signature, secret: "secret/with+chars", uriEncodedTwice: true)
        #expect(throws: SigV4.Failure.mismatch) {
            try SigV4.verify(request, signature: signature, secret: "wrong", uriEncodedTwice: true)
        }
        var tampered = request
        tampered.body = Array("Action=TerminateInstances&Version=2016-11-15".utf8)
        #expect(throws: SigV4.Failure.mismatch) {
            try SigV4.verify(tampered, signature: signature, secret: "secret/with+chars", uriEncodedTwice: true)
        }
    }

    @Test func unsignedAndForeignSignatures() {
        let plain = AWSRequest(method: "GET", target: "/", headers: [], body: [])
        #expect(throws: SigV4.Failure.missing) { try SigV4.parse(plain) }
        let sigv4a = AWSRequest(method: "GET", target: "/", headers: [(name: "Authorization", value: "AWS4-ECDSA-P256-SHA256 Credential=x")], body: [])
        #expect(throws: SigV4.Failure.unsupported("SigV4a")) { try SigV4.parse(sigv4a) }
        let broken = AWSRequest(method: "GET", target: "/", headers: [(name: "Authorization", value: "AWS4-HMAC-SHA256 Credential=x"), (name: "X-Amz-Date", value: "20260101T000000Z")], body: [])
        #expect(throws: SigV4.Failure.self) { try SigV4.parse(broken) }
        // A SigV2 presigned URL is named as such, with what to do, not called "not signed".
        let sigv2 = AWSRequest(method: "GET", target: "/svc/s3/b/k?AWSAccessKeyId=AKIDDUMMYSIGV2KEY&Signature=abc%3D&Expires=1796182050", headers: [], body: [])
        do {
            _ = try SigV4.parse(sigv2)
            Issue.record("a SigV2 presigned URL parsed as SigV4")
        } catch {
            guard case .unsupported(let what) = error else { Issue.record("\(error)"); return }
            #expect(what.contains("SigV2") && what.contains("s3v4"))
        }
    }
}
