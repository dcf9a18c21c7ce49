import AirlockCore
import AirlockPolicy
import Crypto
import Glibc

/// S3 multipart uploads behind the gate. A multipart upload is many calls (create, parts,
/// complete); proposing each would stop the SDK at the first. So the broker answers create
/// and parts itself (a staged upload id, each part's bytes kept in the state directory under
/// its SHA-256) and proposes the whole upload at completion, as one change pinned by every
/// part's digest. Nothing reaches S3 until a human approves; execution replays the exact
/// requests, so the object is byte-identical to what the agent uploaded.
public final class StagedMultipart: @unchecked Sendable {
    enum Outcome {
        case answered(GatewayReply)
        case propose(payload: [UInt8], summary: String)
        case notStaged
    }

    struct Part {
        var number: Int
        var request: PinnedRequest  // body removed; it is in the blob
        var blob: String
        var etag: String
        var size: Int
    }

    struct Upload {
        var bucket: String
        var key: String
        var create: PinnedRequest
        var parts: [Int: Part] = [:]
    }

    /// What one session may stage (docs/gate.md): part bytes kept on disk (until the upload
    /// is approved or denied) and uploads open at once.
    struct Quota: Sendable {
        var bytes: Int
        var uploads: Int
        static let standard = Quota(bytes: 10 << 30, uploads: 100)

        /// `AIRLOCK_STAGING_QUOTA` (bytes, e.g. 2GiB) lowers or raises the byte quota.
        init(environment: [String: String]) {
            self = .standard
            if let text = environment["AIRLOCK_STAGING_QUOTA"], let value = ByteSize.parse(text), value > 0 { bytes = Int(clamping: value) }
        }

        init(bytes: Int, uploads: Int) {
            self.bytes = bytes
            self.uploads = uploads
        }
    }

    public static let idPrefix = "airlock-staged-"
    let directory: String
    let quota: Quota
    private var mutex = pthread_mutex_t()
    private var uploads: [String: Upload] = [:]
    /// Bytes of every part this session staged, replaced parts not counted twice.
    private var stagedBytes = 0

    init(directory: String, quota: Quota = .standard) {
        self.directory = directory
        self.quota = quota
        pthread_mutex_init(&mutex, nil)
    }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    public static func bucketAndKey(_ path: String) -> (String, String) {
        let trimmed = path.drop { $0 == "/" }
        let bucket = String(trimmed.prefix { $0 != "/" })
        let key = String(trimmed.dropFirst(bucket.count).drop { $0 == "/" })
        return (PercentEncoding.decode(bucket), PercentEncoding.decode(key))
    }

    func uploadID(_ request: PinnedRequest) -> String? {
        AWSRequest.parseForm(request.query).first { $0.key == "uploadId" }?.value
    }

    func handle(_ request: PinnedRequest, ruling: Ruling) throws -> Outcome {
        guard request.service == "s3" else { return .notStaged }
        switch request.operation {
        case "CreateMultipartUpload"?:
            let (bucket, key) = Self.bucketAndKey(request.path)
            let id = Self.idPrefix + RandomID.make(24)
            let admitted: Bool = locked {
                guard uploads.count < quota.uploads else { return false }
                uploads[id] = Upload(bucket: bucket, key: key, create: request)
                return true
            }
            guard admitted else {
                return .answered(s3Error(400, "AirlockQuotaExceeded",
                    "Airlock: this session has \(quota.uploads) multipart uploads open, the most it may stage at once; complete or abort one first"))
            }
            var headers: [(String, String)] = [("Content-Type", "application/xml")]
            if let algorithm = request.header("x-amz-checksum-algorithm") { headers.append(("x-amz-checksum-algorithm", algorithm)) }
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>\(xml(bucket))</Bucket><Key>\(xml(key))</Key><UploadId>\(id)</UploadId></InitiateMultipartUploadResult>"
            return .answered(.respond(status: 200, headers: headers, body: Array(body.utf8)))
        case "UploadPart"?:
            guard let id = uploadID(request), id.hasPrefix(Self.idPrefix) else { return .notStaged }
            guard let number = AWSRequest.parseForm(request.query).first(where: { $0.key == "partNumber" })?.value.flatMap(Int.init),
                (1...10_000).contains(number)
            else { return .answered(s3Error(400, "InvalidArgument", "partNumber must be 1 to 10000")) }
            let chunked = request.header("content-encoding")?.contains("aws-chunked") ?? false
            var data = request.body
            var trailers: [(name: String, value: String)] = []
            if chunked {
                guard let decoded = AWSChunked.decode(request.body) else {
                    return .answered(s3Error(400, "IncompleteBody", "the aws-chunked body is malformed"))
                }
                data = decoded.data
                trailers = decoded.trailers
            }
            // The quota is taken before the bytes reach the disk.
            enum Admission { case unknown, overQuota, admitted(previous: Int) }
            let admission: Admission = locked {
                guard let upload = uploads[id] else { return .unknown }
                let previous = upload.parts[number]?.size ?? 0
                guard stagedBytes - previous + data.count <= quota.bytes else { return .overQuota }
                stagedBytes += data.count - previous
                return .admitted(previous: previous)
            }
            switch admission {
            case .unknown: return .answered(noSuchUpload(id))
            case .overQuota:
                return .answered(s3Error(400, "AirlockQuotaExceeded",
                    "Airlock: this session has staged \(ByteSize.human(stagedBytes)) of multipart uploads, its quota is \(ByteSize.human(quota.bytes)) (AIRLOCK_STAGING_QUOTA); wait for the pending uploads to be decided"))
            case .admitted: break
            }
            let blob = try storeBlob(request.body)
            let etag = "\"" + SigV4.hex(Array(Insecure.MD5.hash(data: data))) + "\""
            var stripped = request
            stripped.body = []
            let part = Part(number: number, request: stripped, blob: blob, etag: etag, size: data.count)
            let known: Bool = locked {
                guard uploads[id] != nil else { return false }
                uploads[id]?.parts[number] = part
                return true
            }
            guard known else { return .answered(noSuchUpload(id)) }
            var headers: [(String, String)] = [("ETag", etag)]
            for (name, value) in request.headers + trailers where name.lowercased().hasPrefix("x-amz-checksum-")
                && name.lowercased() != "x-amz-checksum-algorithm" {
                headers.append((name.lowercased(), value))
            }
            return .answered(.respond(status: 200, headers: headers, body: []))
        case "AbortMultipartUpload"?:
            guard let id = uploadID(request), id.hasPrefix(Self.idPrefix) else { return .notStaged }
            let removed: Upload? = locked {
                let upload = uploads.removeValue(forKey: id)
                stagedBytes -= upload?.parts.values.reduce(0) { $0 + $1.size } ?? 0
                return upload
            }
            guard removed != nil else { return .answered(noSuchUpload(id)) }
            return .answered(.respond(status: 204, headers: [], body: []))
        case "CompleteMultipartUpload"?:
            guard let id = uploadID(request), id.hasPrefix(Self.idPrefix) else { return .notStaged }
            guard let upload = locked({ uploads.removeValue(forKey: id) }) else { return .answered(noSuchUpload(id)) }
            let parts = upload.parts.values.sorted { $0.number < $1.number }
            let size = parts.reduce(0) { $0 + $1.size }
            let manifest = MultipartManifest(
                bucket: upload.bucket, key: upload.key, size: size, stagedUploadID: id, create: upload.create,
                parts: parts.map { MultipartManifest.Part(number: $0.number, blobSHA256: $0.blob, etag: $0.etag, size: $0.size, request: $0.request) },
                complete: request)
            let megabytes = String(format1: Double(size) / 1_000_000)
            return .propose(payload: ProposalPayload.s3Multipart(manifest).bytes,
                            summary: "s3:PutObject \(upload.bucket)/\(upload.key) via multipart upload (\(parts.count) parts, \(megabytes) MB)")
        default:
            return .notStaged
        }
    }

    /// ListParts of a staged upload is answered from what was staged.
    /// Whether `answerRead` might answer `request` itself (a ListParts of an upload staged
    /// here): the event loop's quick reads leave those to the pool.
    static func mayAnswerRead(_ request: PinnedRequest) -> Bool {
        request.service == "s3" && request.operation == "ListParts"
    }

    func answerRead(_ request: PinnedRequest) throws -> GatewayReply? {
        guard request.service == "s3", request.operation == "ListParts", let id = uploadID(request), id.hasPrefix(Self.idPrefix) else {
            return nil
        }
        guard let upload = locked({ uploads[id] }) else { return noSuchUpload(id) }
        let parts = upload.parts.values.sorted { $0.number < $1.number }.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(xml($0.etag))</ETag><Size>\($0.size)</Size></Part>"
        }.joined()
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>\(xml(upload.bucket))</Bucket><Key>\(xml(upload.key))</Key><UploadId>\(id)</UploadId><IsTruncated>false</IsTruncated>\(parts)</ListPartsResult>"
        return .respond(status: 200, headers: [("Content-Type", "application/xml")], body: Array(body.utf8))
    }

    /// Content-addressed, written atomically; the name is the SHA-256 of the bytes.
    func storeBlob(_ bytes: [UInt8]) throws -> String {
        let digest = SigV4.hexSHA256(bytes)
        let path = directory + "/" + digest
        if access(path, F_OK) != 0 {
            try ensureDirectory(directory)
            try writeFileAtomically(path, bytes)
        }
        return digest
    }

    public static func readBlob(directory: String, digest: String) throws(AirlockError) -> [UInt8] {
        let bytes = try readFile(directory + "/" + digest, limit: 1 << 30)
        guard SigV4.hexSHA256(bytes) == digest else {
            throw AirlockError("staged part \(digest) was changed on disk since it was proposed; refusing to upload it")
        }
        return bytes
    }

    func noSuchUpload(_ id: String) -> GatewayReply {
        s3Error(404, "NoSuchUpload", "Airlock: no staged upload \(id) (it was completed, aborted, or the session restarted)")
    }

    func s3Error(_ status: Int, _ code: String, _ message: String) -> GatewayReply {
        let rendered = AWSErrorResponse(status: status, code: code, message: message).render(for: .restXML, requestID: RandomID.make(16))
        return .respond(status: status, headers: rendered.headers, body: rendered.body)
    }

    func xml(_ text: String) -> String { AWSErrorResponse(status: 0, code: "", message: "").xml(text) }
}


extension String {
    /// One decimal: 20.0.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
