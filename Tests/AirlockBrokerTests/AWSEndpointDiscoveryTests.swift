import AirlockBroker
import AirlockCore
import Testing

/// Discovered endpoints are answered as the broker's address, so a client that decided on
/// the proxy once (botocore) still calls the broker; only AWS hosts are remembered as places
/// to send the human's credentials.
@Suite struct AWSEndpointDiscoveryTests {
    @Test func addressesBecomeTheBrokers() throws {
        let upstream = Array(#"{"Endpoints":[{"Address":"ingest-cell2.timestream.us-east-1.amazonaws.com","CachePeriodInMinutes":1440}]}"#.utf8)
        let rewritten = try #require(AWSEndpointDiscovery.rewrite(upstream, brokerAddress: "http://127.0.0.1:8181/svc/timestream-write"))
        #expect(rewritten.discovered == "ingest-cell2.timestream.us-east-1.amazonaws.com")
        let json = try JSON.parse(String(decoding: rewritten.body, as: UTF8.self))
        #expect(json["Endpoints"]?.array?.first?["Address"]?.string == "http://127.0.0.1:8181/svc/timestream-write")
        #expect(json["Endpoints"]?.array?.first?["CachePeriodInMinutes"]?.int == 1440)
    }

    @Test func otherShapesPassUnchanged() {
        #expect(AWSEndpointDiscovery.rewrite(Array(#"{"__type":"AccessDeniedException"}"#.utf8), brokerAddress: "x") == nil)
        #expect(AWSEndpointDiscovery.rewrite(Array("<html>".utf8), brokerAddress: "x") == nil)
        #expect(AWSEndpointDiscovery.rewrite(Array(#"{"Endpoints":["a"]}"#.utf8), brokerAddress: "x") == nil)
    }

    @Test func onlyAWSHostsAreRemembered() {
        #expect(AWSEndpointDiscovery.isAWSHost("ingest-cell2.timestream.us-east-1.amazonaws.com"))
        #expect(AWSEndpointDiscovery.isAWSHost("query.timestream.cn-north-1.amazonaws.com.cn"))
        for hostile in ["evil.example.com", "amazonaws.com.evil.net", "x.amazonaws.com:8443", "x.amazonaws.com/path", "user@x.amazonaws.com", "EVIL\u{0}.amazonaws.com"] {
            #expect(!AWSEndpointDiscovery.isAWSHost(hostile), "\(hostile)")
        }
    }
}
