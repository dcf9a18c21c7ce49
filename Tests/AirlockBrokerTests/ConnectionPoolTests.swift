@testable import AirlockBroker
import Foundation
import Testing

/// The gate client's kept connections (ConnectionPool): a kept connection the server closed
/// while it sat idle is replaced, for a POST too, since nothing of the request was written; a
/// POST whose connection closed after it was written is not sent again (it may have been
/// taken: a proposal made twice), and says so as uncertain.
@Suite struct ConnectionPoolTests {
    /// A plain HTTP/1.1 server: answers every request with "conn=N" (N counts accepted
    /// connections) and keep-alive; /close-after answers, then closes; /drop closes without
    /// answering. Each request line goes to LOG.
    static let server = #"""
        import json, socket, sys, threading
        log = open(sys.argv[1], "a", buffering=1)
        listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(16)
        print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
        count = 0
        def serve(conn, number):
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk: conn.close(); return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length:")), 0)
                while len(data) < length: data += conn.recv(65536)
                data = data[length:]
                log.write(f"{number} {lines[0]}\n")
                path = lines[0].split(" ")[1]
                if path == "/drop": conn.close(); return
                body = f"conn={number}".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                if path == "/close-after": conn.close(); return
        while True:
            conn, _ = listener.accept(); count += 1
            threading.Thread(target=serve, args=(conn, count), daemon=True).start()
        """#

    func request(_ port: Int, _ method: String, _ path: String) -> OutboundRequest {
        OutboundRequest(scheme: "http", host: "127.0.0.1", port: port, method: method, target: path,
                        headers: [(name: "Host", value: "127.0.0.1:\(port)"), (name: "Content-Type", value: "application/json"),
                                  (name: "Content-Length", value: "2")],
                        body: Array("{}".utf8))
    }

    @Test func aClosedKeptConnectionIsReplacedAndAPostIsNeverSentTwice() throws {
        let log = NSTemporaryDirectory() + "pool-\(UUID().uuidString).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.server, log]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            try #require(!chunk.isEmpty, "the test server did not start")
            line.append(chunk)
        }
        let port = try #require((try JSONSerialization.jsonObject(with: line) as? [String: Int])?["port"])
        let pool = ConnectionPool(scheme: "http", host: "127.0.0.1", port: port, trust: nil)

        func body(_ exchange: ExecutionClient.Exchange) -> String {
            if case .answered(let response) = exchange { return String(decoding: response.body, as: UTF8.self) }
            return "\(exchange)"
        }
        // Kept, then closed by the server while idle: the next POST goes on a new connection.
        #expect(body(pool.exchange(request(port, "POST", "/close-after"), timeoutSeconds: 20)) == "conn=1")
        var closedSeen = false
        for _ in 0..<100 where !closedSeen {
            // The server's close reaches the kept channel asynchronously: wait for NIO to see it.
            closedSeen = !(pool.idle.withLock { $0.first?.channel.isActive } ?? false)
            if !closedSeen { usleep(10_000) }
        }
        #expect(closedSeen, "the server's close never reached the kept connection")
        #expect(body(pool.exchange(request(port, "POST", "/v1/proposals"), timeoutSeconds: 20)) == "conn=2")
        // Kept and reused while open: no new connection.
        #expect(body(pool.exchange(request(port, "GET", "/v1/whoami"), timeoutSeconds: 20)) == "conn=2")
        // Written, then closed unanswered: a POST is uncertain and sent once.
        let dropped = pool.exchange(request(port, "POST", "/drop"), timeoutSeconds: 20)
        guard case .uncertain = dropped else {
            Issue.record("a POST the server may have taken was reported as \(dropped)")
            return
        }
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.filter { $0.hasSuffix("POST /drop HTTP/1.1") }.count == 1, "\(lines)")
        #expect(lines.filter { $0.contains("POST /v1/proposals") }.count == 1, "\(lines)")
    }
}
