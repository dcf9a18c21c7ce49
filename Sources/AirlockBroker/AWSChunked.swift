/// `Content-Encoding: aws-chunked` bodies: `<hex size>[;chunk-signature=…]\r\n<data>\r\n`
/// … `0\r\n<trailer headers>\r\n\r\n`. S3 uploads from current SDKs use it for checksums.
enum AWSChunked {
    struct Decoded {
        var data: [UInt8]
        var trailers: [(name: String, value: String)]
    }

    static func decode(_ body: [UInt8]) -> Decoded? {
        var data: [UInt8] = []
        data.reserveCapacity(body.count)
        var index = 0
        func line() -> [UInt8]? {
            var end = index
            while end + 1 < body.count && !(body[end] == 13 && body[end + 1] == 10) { end += 1 }
            guard end + 1 < body.count else { return nil }
            defer { index = end + 2 }
            return Array(body[index..<end])
        }
        while true {
            guard let header = line() else { return nil }
            let sizeText = header.prefix { $0 != UInt8(ascii: ";") }
            guard let size = Int(String(decoding: sizeText, as: UTF8.self).trimmingWhitespace(), radix: 16), size >= 0 else { return nil }
            if size == 0 { break }
            guard index + size + 2 <= body.count, body[index + size] == 13, body[index + size + 1] == 10 else { return nil }
            data += body[index..<index + size]
            index += size + 2
        }
        var trailers: [(String, String)] = []
        while let trailer = line(), !trailer.isEmpty {
            let text = String(decoding: trailer, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { return nil }
            let name = text[..<colon].lowercased()
            if name == "x-amz-trailer-signature" { continue }
            trailers.append((name, String(text[text.index(after: colon)...]).trimmingWhitespace()))
        }
        return Decoded(data: data, trailers: trailers)
    }
}
