import AirlockCore
import AirlockPolicy

/// Executing a pinned AWS request: signed with real credentials for the upstream.
extension PinnedRequest {
    /// Signed for `upstream` with `credentials`. Streaming payloads the upstream cannot check
    /// with our signature (chunk-signed aws-chunked) are decoded to plain bodies; unsigned
    /// ones (`UNSIGNED-PAYLOAD`, `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) keep their sentinel and
    /// their bytes, so S3 stores exactly what the agent uploaded.
    func signed(for upstream: AWSUpstream, service: AWSService, credentials: SigV4.Credentials,
                timestamp: String = Clock.amzDate()) -> OutboundRequest {
        let target = upstream.target(service: service, region: region)
        var headers = self.headers
        var body = self.body
        var payloadHash: String
        let declared = header("x-amz-content-sha256")
        switch declared {
        case SigV4.unsignedPayload?, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"?:
            payloadHash = declared!
        case let sentinel? where sentinel.hasPrefix("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
            // Chunk signatures were made with the agent's key: send the plain body instead.
            if let decoded = AWSChunked.decode(body) {
                body = decoded.data
                headers = headers.filter {
                    !["x-amz-decoded-content-length", "x-amz-trailer"].contains($0.name.lowercased())
                }
                headers = headers.compactMap { header in
                    guard header.name.lowercased() == "content-encoding" else { return header }
                    let rest = header.value.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { $0 != "aws-chunked" }
                    return rest.isEmpty ? nil : (header.name, rest.joined(separator: ","))
                }
                headers += decoded.trailers.map { (name: $0.name, value: $0.value) }
            }
            payloadHash = SigV4.hexSHA256(body)
            headers = headers.map { $0.name.lowercased() == "x-amz-content-sha256" ? ($0.name, payloadHash) : $0 }
        default:
            payloadHash = SigV4.hexSHA256(body)
            if declared != nil {
                headers = headers.map { $0.name.lowercased() == "x-amz-content-sha256" ? ($0.name, payloadHash) : $0 }
            }
        }
        let path = target.basePath + (self.path.isEmpty ? "/" : self.path)
        let host = target.port == (target.scheme == "https" ? 443 : 80) ? target.host : "\(target.host):\(target.port)"
        var signed = SigV4.signedHeaders(
            method: method, path: path, query: query, host: host, headers: headers, payloadHash: payloadHash,
            credentials: credentials, region: region, service: signingName, timestamp: timestamp,
            uriEncodedTwice: !isS3Family)
        signed.append(("Content-Length", String(body.count)))
        var outbound = OutboundRequest(scheme: target.scheme, host: target.host, port: target.port, method: method,
                                       target: query.isEmpty ? path : path + "?" + query, headers: signed, body: body)
        // The signing key names the principal (docs/design.md §4.5).
        outbound.identity = "aws " + credentials.accessKeyID
        return outbound
    }
}
