import AirlockCore

/// An S3 multipart upload as a proposal pins it (docs/gate.md, "S3 multipart uploads"): the
/// pinned create and complete requests and each part's request, with the SHA-256 of the part's
/// bytes, which live in the blob store (content-addressed by that digest).
public struct MultipartManifest: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var number: Int
        public var blobSHA256: String
        public var etag: String
        public var size: Int
        public var request: PinnedRequest
        public init(number: Int, blobSHA256: String, etag: String, size: Int, request: PinnedRequest) {
            self.number = number
            self.blobSHA256 = blobSHA256
            self.etag = etag
            self.size = size
            self.request = request
        }
    }

    public var bucket: String
    public var key: String
    public var size: Int
    public var stagedUploadID: String
    public var create: PinnedRequest
    public var parts: [Part]
    public var complete: PinnedRequest

    public init(bucket: String, key: String, size: Int, stagedUploadID: String, create: PinnedRequest, parts: [Part], complete: PinnedRequest) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.stagedUploadID = stagedUploadID
        self.create = create
        self.parts = parts
        self.complete = complete
    }

    public var json: JSON {
        .object([
            ("type", .string("s3-multipart")), ("bucket", .string(bucket)), ("key", .string(key)),
            ("size", .number(Double(size))), ("staged_upload_id", .string(stagedUploadID)),
            ("create", create.json),
            ("parts", .array(parts.map { part in
                .object([("part_number", .number(Double(part.number))), ("blob_sha256", .string(part.blobSHA256)),
                         ("etag", .string(part.etag)), ("size", .number(Double(part.size))), ("request", part.request.json)])
            })),
            ("complete", complete.json),
        ])
    }

    public init?(json: JSON) {
        guard json["type"]?.string == "s3-multipart", let bucket = json["bucket"]?.string, let key = json["key"]?.string,
              let size = json["size"]?.int, let staged = json["staged_upload_id"]?.string,
              let create = json["create"].flatMap(PinnedRequest.init(json:)), let complete = json["complete"].flatMap(PinnedRequest.init(json:)),
              case .array(let items)? = json["parts"] else { return nil }
        var parts: [Part] = []
        for item in items {
            guard let number = item["part_number"]?.int, let blob = item["blob_sha256"]?.string, let etag = item["etag"]?.string,
                  let partSize = item["size"]?.int, let request = item["request"].flatMap(PinnedRequest.init(json:)) else { return nil }
            parts.append(Part(number: number, blobSHA256: blob, etag: etag, size: partSize, request: request))
        }
        self.init(bucket: bucket, key: key, size: size, stagedUploadID: staged, create: create, parts: parts, complete: complete)
    }
}
