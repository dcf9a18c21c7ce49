import AirlockCore
import AirlockSandbox
import Glibc

/// `airlock doctor`'s network checks, done for real: a throwaway `airlock run` whose probe
/// (this binary, inside the sandbox) fetches a page from a one-shot server on the host's
/// loopback through the broker's proxy, is refused a host not on the list, finds no DNS
/// and cannot connect around the proxy.
enum EgressDoctor {
    static let probeHost = "airlock-doctor.test"
    static let answer = "airlock-doctor-ok"

    static func checks(environment: [String: String]) -> [DoctorCheck] {
        guard let binary = HostInspection.realPath("/proc/self/exe") else {
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: "cannot find the airlock binary", fix: nil)]
        }
        var template = Array("/tmp/airlock-doctor-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: "cannot make a temporary directory", fix: nil)]
        }
        let scratch = String(cString: made)
        defer { _ = try? ChildProcess.run(["/bin/rm", "-rf", scratch], environment: ["PATH": "/usr/bin:/bin"]) }
        let server: OneShotServer
        do {
            server = try OneShotServer(body: answer)
        } catch {
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: error.message, fix: nil)]
        }
        let profile = scratch + "/doctor.yaml"
        let yaml = "network:\n  allow: [\(probeHost):\(server.port)]\n  allow_addresses: [127.0.0.1/32]\n"
        guard writeFile(profile, yaml) else {
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: "cannot write \(profile)", fix: nil)]
        }
        var childEnvironment = environment
        childEnvironment["AIRLOCK_EGRESS_RESOLVE"] = "\(probeHost)=127.0.0.1"
        let argv = [binary, "run", "--state-dir", scratch + "/state", "--workspace", scratch, "--profile", profile, "--",
                    "/run/airlock/bin/airlock", "doctor", "--probe-egress", "http://\(probeHost):\(server.port)/"]
        let output: ChildProcess.Output
        do {
            output = try ChildProcess.run(argv, environment: childEnvironment)
        } catch {
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: error.message, fix: nil)]
        }
        server.stop()
        var results: [String: (ok: Bool, detail: String)] = [:]
        for line in output.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { continue }
            results[parts[0]] = (parts[1] == "ok", parts[2])
        }
        guard let proxy = results["proxy"], let refusal = results["refusal"], let dns = results["dns"], let direct = results["direct"] else {
            let why = output.stderr.split(separator: "\n").first.map(String.init) ?? "exit \(output.status)"
            return [DoctorCheck(name: "egress proxy", status: .failed, detail: "the probe sandbox did not run: \(why)",
                                fix: "run `airlock run -- true` to see the whole error")]
        }
        let proxyCheck = proxy.ok && refusal.ok
            ? DoctorCheck(name: "egress proxy", status: .ok, detail: "\(proxy.detail); \(refusal.detail)", fix: nil)
            : DoctorCheck(name: "egress proxy", status: .failed, detail: proxy.ok ? refusal.detail : proxy.detail,
                          fix: "see the session log under \(scratch) (kept only while doctor runs); report a bug if it persists")
        let isolated = dns.ok && direct.ok
        let pathCheck = DoctorCheck(name: "DNS-free path", status: isolated ? .ok : .failed,
                                    detail: isolated ? "\(dns.detail); \(direct.detail)" : (dns.ok ? direct.detail : dns.detail),
                                    fix: isolated ? nil : "the sandbox's network namespace is not isolated: check that airlock runs with network namespaces")
        return [proxyCheck, pathCheck]
    }

    /// Inside the sandbox: one line per check, "NAME ok|failed DETAIL".
    static func probe(url: String, environment: [String: String]) -> Int32 {
        let proxyURL = environment["HTTP_PROXY"] ?? environment["http_proxy"] ?? ""
        guard let proxy = parseProxy(proxyURL) else {
            print("proxy failed HTTP_PROXY is not set to http://127.0.0.1:PORT in the sandbox ('\(proxyURL)')")
            return 1
        }
        let host = url.dropFirst("http://".count).split(separator: "/").first.map(String.init) ?? ""
        let fetched = exchange(proxy, "GET \(url) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
        if fetched.contains(answer) {
            print("proxy ok fetched a page through \(proxyURL)")
        } else {
            print("proxy failed no answer through \(proxyURL): \(oneLine(fetched))")
        }
        let refused = exchange(proxy, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        if refused.hasPrefix("HTTP/1.1 403") {
            print("refusal ok a host not on the list is refused (403)")
        } else {
            print("refusal failed example.com:443 was not refused: \(oneLine(refused))")
        }
        var info: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo("example.com", "443", nil, &info)
        if resolved == 0 {
            freeaddrinfo(info)
            print("dns failed example.com resolves inside the sandbox")
        } else {
            print("dns ok no DNS inside the sandbox")
        }
        let direct = connectDirect(ip: "192.0.2.1", port: 80)
        print(direct == 0 ? "direct failed a connection around the proxy succeeded" : "direct ok no route around the proxy (\(String(cString: strerror(direct))))")
        return 0
    }

    static func oneLine(_ text: String) -> String {
        String(text.prefix(200).map { $0.isNewline ? " " : $0 })
    }

    static func parseProxy(_ url: String) -> (String, UInt16)? {
        guard url.hasPrefix("http://") else { return nil }
        let authority = url.dropFirst(7).split(separator: "/").first ?? ""
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        return (String(parts[0]), port)
    }

    /// Sends a request to ip:port and reads the answer (up to 64 KiB, 5 s).
    static func exchange(_ address: (String, UInt16), _ request: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = address.1.bigEndian
        inet_pton(AF_INET, address.0, &addr.sin_addr)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "connect: \(String(cString: strerror(errno)))" }
        let bytes = Array(request.utf8)
        guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return "send failed" }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < 65536 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
            if request.hasPrefix("CONNECT"), received.count >= 12 { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// 0 when a direct TCP connection succeeds, else the errno.
    static func connectDirect(ip: String, port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, ip, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0 ? 0 : errno
    }

    static func writeFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return write(fd, bytes, bytes.count) == bytes.count
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with one fixed body, on its own
/// thread, until stopped.
final class OneShotServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let thread: Background<Void>

    init(body: String) throws(AirlockError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AirlockError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw AirlockError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: addr.sin_port)
        self.fd = fd
        let response = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
        thread = Background {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                var buffer = [UInt8](repeating: 0, count: 4096)
                var seen: [UInt8] = []
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                while !seen.suffix(4).elementsEqual([13, 10, 13, 10]), seen.count < 65536 {
                    let count = recv(client, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    seen += buffer[0..<count]
                }
                _ = send(client, response, response.count, Int32(MSG_NOSIGNAL))
                close(client)
            }
        }
    }

    /// Wakes the accept loop (shutdown on a listening socket makes accept fail) and closes.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        _ = thread.value
        close(fd)
    }
}
