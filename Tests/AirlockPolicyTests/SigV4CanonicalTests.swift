import AirlockCore
@testable import AirlockPolicy
import Crypto
import Testing

/// The byte-level SigV4 pieces (issue: classification and verification cost) say exactly what
/// the string versions said: canonical headers (case, spaces, repeated names), dot segments,
/// hex, and the derived-key cache.
@Suite struct SigV4CanonicalTests {
    @Test func canonicalHeadersFoldCaseTrimAndJoinRepeatedNames() {
        let text = SigV4.canonicalRequest(
            method: "get", path: "/a/./b/../c/", query: "b=2&a=1",
            headers: [("Host", "example.com"), ("X-Amz-Meta-A", "  one \t  two  "), ("x-amz-meta-a", "three"), ("X-AMZ-DATE", "20150830T123600Z")],
            signedHeaders: ["host", "x-amz-date", "x-amz-meta-a"], payloadHash: "UNSIGNED-PAYLOAD", uriEncodedTwice: true, excludeQueryKey: nil)
        #expect(text == "GET\n/a/c/\na=1&b=2\nhost:example.com\nx-amz-date:20150830T123600Z\nx-amz-meta-a:one two,three\n\nhost;x-amz-date;x-amz-meta-a\nUNSIGNED-PAYLOAD")
    }

    @Test(arguments: [("/", "/"), ("/a/b", "/a/b"), ("/a/./b/", "/a/b/"), ("/a/../../b", "/b"), ("//a//b//", "/a/b/"), ("/..", "/"), ("/.../x", "/.../x"),
                      ("a/b", "a/b"), ("/./", "/")])
    func dotSegments(_ path: String, _ expected: String) {
        #expect(SigV4.removeDotSegments(path) == expected)
    }

    @Test func headerNamesFoldASCIIOnly() {
        // The Kelvin sign lowercases to "k" in Unicode, not in AWS's ASCII folding.
        let request = AWSRequest(method: "PUT", target: "/b/k", headers: [("X-Amz-Content-Sha256", "abc"), ("x-amz-\u{212A}ey", "v")], body: [])
        #expect(request.header("x-amz-content-sha256") == "abc")
        #expect(request.header("X-AMZ-CONTENT-SHA256") == "abc")
        #expect(request.header("x-amz-key") == nil)
        #expect(SigV4.asciiCaseInsensitiveEqual("Content-Type", "content-type") && !SigV4.asciiCaseInsensitiveEqual("a[", "a{"))
    }

    @Test func derivedKeysAreCachedPerScopeAndSecret() {
        func derived(_ secret: String, _ date: String, _ region: String, _ service: String) -> [UInt8] {
            var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
            for part in [date, region, service, "aws4_request"] {
                key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
            }
            return key.withUnsafeBytes { Array($0) }
        }
        for (secret, service) in [("s1", "iam"), ("s1", "s3"), ("s2", "iam"), ("s1", "iam")] {
            let key = SigV4.signingKey(secret: secret, date: "20150830", region: "us-east-1", service: service)
            #expect(key.withUnsafeBytes { Array($0) } == derived(secret, "20150830", "us-east-1", service), "\(secret) \(service)")
        }
        #expect(SigV4.hex([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff" && SigV4.hex([]) == "")
    }
}
