@testable import AirlockPolicy
import Testing

/// The resolver asks the query by key and value without decoding it when it holds no escape
/// (QueryLookup): every answer must be the decoded pairs' answer (AWSRequest.parseForm), or a
/// template's query literal would pick another operation than the decoded reading does.
@Suite struct QueryLookupTests {
    static let queries = [
        "", "uploads", "uploads=", "uploads&x=1", "x=1&uploads", "&&uploads&&", "uploadId=abc", "uploadId=abc&partNumber=2",
        "list-type=2", "list-type=2&list-type=1", "list-type", "list-type=", "versionId", "versionId=&x", "a=b=c", "=x", "=",
        "upload%73", "uploads%3D", "list%2Dtype=2", "list-type=%32", "a+b=c", "x=a+b", "tagging&tagging=1", "acl=x&acl",
        "delete", "del%65te", "DELETE", "ünïcode=1", "k=v&k", "k&k=v",
    ]
    static let keys = ["uploads", "uploadId", "partNumber", "list-type", "versionId", "a", "", "x", "delete", "acl", "tagging", "k",
                       "a b", "upload%73", "ünïcode"]
    static let values: [String?] = [nil, "", "2", "1", "abc", "b=c", "a b", "a+b", "v", "%32"]

    @Test func answersAsTheDecodedPairsDo() {
        var checked = 0
        for query in Self.queries {
            let decoded = AWSRequest.parseForm(query)
            var lookup = QueryLookup(query)
            for key in Self.keys {
                for value in Self.values {
                    let expected = !query.isEmpty && decoded.contains { $0.key == key && (value == nil || $0.value == value) }
                    #expect(lookup.has(key, value: value) == expected, "query \(query) key \(key) value \(String(describing: value))")
                    checked += 1
                }
                #expect(lookup.has(key) == (!query.isEmpty && decoded.contains { $0.key == key }), "query \(query) key \(key)")
            }
        }
        #expect(checked == Self.queries.count * Self.keys.count * Self.values.count)
    }

    /// The one form test the classifier's `Action` and every later reader make.
    @Test func formContentType() {
        let rows: [(String?, Bool)] = [
            (nil, true), ("", true), ("application/x-www-form-urlencoded", true), ("application/x-www-form-urlencoded; charset=utf-8", true),
            ("APPLICATION/X-WWW-FORM-URLENCODED", true), ("application/x-www-form-urlencode", false), ("application/json", false),
            ("text/plain", false), ("application/x-www-form-urlencodedX", true), (" application/x-www-form-urlencoded", false),
            ("applİcation/x-www-form-urlencoded", false), ("application/x-amz-json-1.0", false),
        ]
        for (value, form) in rows { #expect(AWSRequest.isFormContentType(value) == form, "\(String(describing: value))") }
    }
}
