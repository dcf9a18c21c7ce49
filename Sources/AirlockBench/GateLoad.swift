import AirlockCore
import Glibc
import Synchronization

/// `airlock-bench gate-load`: the load generator of `scripts/bench gate`. One thread per agent
/// session on a kept-alive HTTP/1.1 connection (blocking sockets: 100 sessions cost 100
/// threads and no event loop, lighter than 100 Python clients or an HTTP library), against one
/// gate replica or several (sessions spread over them).
///
///     airlock-bench gate-load --urls URL[,URL] --host-token T --user-token U --queue-url Q
///         [--sessions 100] [--seconds 10] [--rate R] [--approvals 200] [--approvers 8] [--upstream MOTO_URL]
///
/// Phase 1: every session creates proposals (SQS SendMessage) for --seconds, reading its last
/// proposal back after each (what `airlock wait` does on the gate): as fast as the gate answers
/// (closed loop: its throughput), or with `--rate R`, R proposals a second per session (paced:
/// the latency an agent sees while 100 sessions are active). Phase 2: approvers
/// approve --approvals of them; each approval returns when the gate has executed it, so its
/// latency is decision-to-result. Phase 3 (with --upstream): the same call sent straight to
/// the upstream, for the ratio. Prints one JSON object.
struct BlockingHTTP {
    let fd: Int32
    var buffer: [UInt8] = []

    init?(url: String) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(7)
        let hostPort = rest.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else { return nil }
        let host = String(hostPort[..<colon])
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else { close(fd); return nil }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); return nil }
    }

    func shutdown() { close(fd) }

    /// One request; the answer's status and body (nil: the connection failed).
    mutating func call(_ method: String, _ path: String, token: String?, body: [UInt8] = [],
                       contentType: String = "application/json", extraHeaders: [(String, String)] = []) -> (status: Int, body: [UInt8])? {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\nContent-Type: \(contentType)\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in extraHeaders { head += "\(name): \(value)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return nil }
            sent += n
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return false }
            buffer += chunk[0..<n]
            return true
        }
        var headerEnd: Int?
        while headerEnd == nil {
            if let end = Self.find([13, 10, 13, 10], in: buffer) { headerEnd = end; break }
            guard fill() else { return nil }
        }
        let header = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        let lines = header.split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
              let status = Int(statusLine.split(separator: " ")[1]) else { return nil }
        var length = 0
        for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
            length = Int(String(line.dropFirst(15)).trimmingCharacters(in: " ")) ?? 0
        }
        let start = headerEnd! + 4
        while buffer.count < start + length { guard fill() else { return nil } }
        let answer = Array(buffer[start..<(start + length)])
        buffer.removeFirst(start + length)
        return (status, answer)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}

final class Samples: Sendable {
    private let values = Mutex<[String: [Double]]>([:])
    private let ids = Mutex<[String]>([])
    private let errors = Mutex<[String: Int]>([:])

    func add(_ name: String, _ seconds: Double) { values.withLock { $0[name, default: []].append(seconds) } }
    func addID(_ id: String) { ids.withLock { $0.append(id) } }
    func error(_ what: String) { errors.withLock { $0[what, default: 0] += 1 } }
    func take(_ name: String) -> [Double] { values.withLock { $0[name] ?? [] }.sorted() }
    var proposalIDs: [String] { ids.withLock { $0 } }
    var errorCounts: [String: Int] { errors.withLock { $0 } }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = Mutex(0)
    for index in 0..<count {
        DetachedThread.run {
            body(index)
            done.withLock { $0 += 1 }
        }
    }
    while done.withLock({ $0 }) < count { usleep(5_000) }
}

func gateLoad(_ arguments: [String]) {
    var options: [String: String] = [:]
    var index = 0
    while index + 1 < arguments.count {
        options[arguments[index]] = arguments[index + 1]
        index += 2
    }
    guard let urls = options["--urls"]?.split(separator: ",").map(String.init), !urls.isEmpty,
          let hostToken = options["--host-token"], let userToken = options["--user-token"], let queueURL = options["--queue-url"] else {
        fail("usage: airlock-bench gate-load --urls URL[,URL] --host-token T --user-token U --queue-url Q [--sessions N] [--seconds S] [--approvals N] [--approvers N] [--upstream URL]")
    }
    let sessions = Int(options["--sessions"] ?? "") ?? 100
    let seconds = Double(options["--seconds"] ?? "") ?? 10
    let approvals = Int(options["--approvals"] ?? "") ?? 200
    let approvers = Int(options["--approvers"] ?? "") ?? 8
    let rate = Double(options["--rate"] ?? "")
    let runTag = RandomID.make(8)
    @Sendable func payload(_ text: String) -> [UInt8] {
        let body = "{\"QueueUrl\":\"\(queueURL)\",\"MessageBody\":\"\(text)\"}"
        let pinned = JSON.object([
            ("type", .string("aws-request")), ("service", .string("sqs")), ("signing_name", .string("sqs")), ("region", .string("us-east-1")),
            ("operation", .string("SendMessage")), ("method", .string("POST")), ("path", .string("/")), ("query", .string("")),
            ("headers", .array([.array([.string("Content-Type"), .string("application/x-amz-json-1.0")]),
                                .array([.string("X-Amz-Target"), .string("AmazonSQS.SendMessage")])])),
            ("body_base64", .string(Base64.encode(Array(body.utf8)))),
        ])
        return Array(pinned.serialized().utf8)
    }
    let samples = Samples()
    // Every session stops below the per-session pending limit (200).
    let perSessionCap = 190
    let started = Clock.monotonicSeconds()
    let deadline = started + seconds
    runThreads(sessions) { number in
        guard var connection = BlockingHTTP(url: urls[number % urls.count]) else { samples.error("connect"); return }
        defer { connection.shutdown() }
        let session = "bench-\(runTag)-\(number)"
        guard connection.call("POST", "/v1/sessions", token: hostToken, body: Array("{\"id\":\"\(session)\"}".utf8))?.status == 201 else {
            samples.error("session"); return
        }
        var made = 0
        // Paced sessions start spread over one interval, so they do not all fire at once.
        var due = Clock.monotonicSeconds() + (rate.map { Double(number) / Double(sessions) / $0 } ?? 0)
        while Clock.monotonicSeconds() < deadline && made < perSessionCap {
            if let rate {
                let wait = due - Clock.monotonicSeconds()
                if wait > 0 { usleep(UInt32(wait * 1e6)) }
                due += 1 / rate
            }
            let request = Array("{\"session_id\":\"\(session)\",\"payload_base64\":\"\(Base64.encode(payload("m-\(number)-\(made)")))\"}".utf8)
            let t0 = Clock.monotonicSeconds()
            guard let answer = connection.call("POST", "/v1/proposals", token: hostToken, body: request) else { samples.error("propose-connection"); return }
            let t1 = Clock.monotonicSeconds()
            guard answer.status == 201, let id = (try? JSON.parse(bytes: answer.body))?["id"]?.string else {
                samples.error("propose-\(answer.status)"); continue
            }
            samples.add("create", t1 - t0)
            samples.addID(id)
            made += 1
            // The host's read of its own proposal (an `airlock wait` look).
            let r0 = Clock.monotonicSeconds()
            guard let read = connection.call("GET", "/v1/proposals/\(id)", token: hostToken), read.status == 200 else { samples.error("read"); continue }
            samples.add("read", Clock.monotonicSeconds() - r0)
        }
    }
    let elapsed = Clock.monotonicSeconds() - started
    let created = samples.take("create")
    let reads = samples.take("read")

    // Decisions: approvers spread over the replicas, each approval returns the result.
    let ids = Array(samples.proposalIDs.prefix(approvals))
    let next = Mutex(0)
    let decideStarted = Clock.monotonicSeconds()
    runThreads(approvers) { number in
        guard var connection = BlockingHTTP(url: urls[number % urls.count]) else { samples.error("connect"); return }
        defer { connection.shutdown() }
        while true {
            let position = next.withLock { value -> Int in defer { value += 1 }; return value }
            guard position < ids.count else { return }
            let t0 = Clock.monotonicSeconds()
            guard let answer = connection.call("POST", "/v1/proposals/\(ids[position])/approve", token: userToken, body: Array("{}".utf8)) else {
                samples.error("approve-connection"); return
            }
            guard answer.status == 200, (try? JSON.parse(bytes: answer.body))?["state"]?.string == "succeeded" else {
                samples.error("approve-\(answer.status)"); continue
            }
            samples.add("decide", Clock.monotonicSeconds() - t0)
        }
    }
    let decideElapsed = Clock.monotonicSeconds() - decideStarted
    let decided = samples.take("decide")

    // The upstream alone: the same SendMessage straight to it, one at a time.
    var direct: [Double] = []
    if let upstream = options["--upstream"] {
        // A new connection per call, as the gate's executor makes (moto closes each anyway).
        for number in 0..<min(200, max(approvals, 1)) {
            let body = Array("{\"QueueUrl\":\"\(queueURL)\",\"MessageBody\":\"direct-\(number)\"}".utf8)
            let t0 = Clock.monotonicSeconds()
            guard var connection = BlockingHTTP(url: upstream) else { samples.error("direct-connect"); continue }
            let answer = connection.call("POST", "/", token: nil, body: body, contentType: "application/x-amz-json-1.0",
                                         extraHeaders: [("X-Amz-Target", "AmazonSQS.SendMessage"), ("Connection", "close"),
                                                        ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00")])
            connection.shutdown()
            guard answer?.status == 200 else { samples.error("direct"); continue }
            direct.append(Clock.monotonicSeconds() - t0)
        }
        direct.sort()
    }
    func ms(_ value: Double) -> JSON { .number((value * 1e5).rounded() / 100) }
    let result = JSON.object([
        ("replicas", .number(Double(urls.count))), ("sessions", .number(Double(sessions))), ("rate", rate.map { .number($0) } ?? .null), ("seconds", .number((elapsed * 100).rounded() / 100)),
        ("created", .number(Double(created.count))), ("created_per_second", .number((Double(created.count) / elapsed).rounded())),
        ("create_p50_ms", ms(percentile(created, 0.5))), ("create_p99_ms", ms(percentile(created, 0.99))),
        ("read_p50_ms", ms(percentile(reads, 0.5))), ("read_p99_ms", ms(percentile(reads, 0.99))),
        ("decided", .number(Double(decided.count))), ("decided_per_second", .number((Double(decided.count) / decideElapsed).rounded())),
        ("decide_p50_ms", ms(percentile(decided, 0.5))), ("decide_p99_ms", ms(percentile(decided, 0.99))),
        ("upstream_p50_ms", ms(percentile(direct, 0.5))), ("upstream_p99_ms", ms(percentile(direct, 0.99))),
        ("errors", .object(samples.errorCounts.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
    ])
    print(result.serialized())
}
