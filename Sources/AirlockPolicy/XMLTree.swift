/// A small XML reader for AWS responses (the query and REST-XML protocols), used by the
/// effect previews (docs/previews.md): elements, their text and children; attributes,
/// comments, processing instructions and the declaration are skipped; the five named
/// entities and numeric references are decoded; CDATA is text. No DTDs (AWS sends none,
/// and a DOCTYPE is refused, so no entity expansion can be asked for). Pure; bounded by the
/// caller's body limit and a depth limit. Hand-written: Foundation's XMLParser would bring
/// Foundation and libxml2 into the static `airlock` binary for a few response shapes.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var text: String
    public var children: [XMLElement]

    /// The local name (`ns:Tag` → `Tag`).
    public var localName: String { name.split(separator: ":").last.map(String.init) ?? name }

    public func child(_ name: String) -> XMLElement? { children.first { $0.localName == name } }
    public func all(_ name: String) -> [XMLElement] { children.filter { $0.localName == name } }
    /// The text of the child at `path` ("Stacks/member/StackName").
    public subscript(path: String) -> String? { element(path)?.text }

    public func element(_ path: String) -> XMLElement? {
        var node: XMLElement? = self
        for part in path.split(separator: "/") { node = node?.child(String(part)) }
        return node
    }

    /// Every element named `name` at any depth below this one, in document order.
    public func descendants(_ name: String) -> [XMLElement] {
        var found: [XMLElement] = []
        for child in children {
            if child.localName == name { found.append(child) }
            found += child.descendants(name)
        }
        return found
    }
}

public enum XMLTree {
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    static let maximumDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(Invalid) -> XMLElement {
        var index = 0
        var stack: [XMLElement] = []
        var root: XMLElement?
        func fail(_ why: String) -> Invalid { Invalid(description: "XML: \(why) at byte \(index)") }
        func starts(_ text: String) -> Bool {
            let needle = Array(text.utf8)
            return index + needle.count <= bytes.count && bytes[index..<(index + needle.count)].elementsEqual(needle)
        }
        func skip(past text: String) throws(Invalid) {
            let needle = Array(text.utf8)
            while index + needle.count <= bytes.count {
                if bytes[index..<(index + needle.count)].elementsEqual(needle) { index += needle.count; return }
                index += 1
            }
            throw fail("\(text) never comes")
        }
        while index < bytes.count {
            if bytes[index] != 0x3C {  // text
                let start = index
                while index < bytes.count, bytes[index] != 0x3C { index += 1 }
                if !stack.isEmpty { stack[stack.count - 1].text += try decode(bytes[start..<index]) }
                else if !bytes[start..<index].allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { throw fail("text outside the root") }
                continue
            }
            if starts("<?") { try skip(past: "?>"); continue }
            if starts("<!--") { try skip(past: "-->"); continue }
            if starts("<![CDATA[") {
                index += 9
                let start = index
                try skip(past: "]]>")
                guard !stack.isEmpty else { throw fail("CDATA outside the root") }
                stack[stack.count - 1].text += String(decoding: bytes[start..<(index - 3)], as: UTF8.self)
                continue
            }
            if starts("<!") { throw fail("a DOCTYPE or declaration") }
            if starts("</") {
                index += 2
                let start = index
                while index < bytes.count, bytes[index] != 0x3E { index += 1 }
                guard index < bytes.count else { throw fail("an unterminated end tag") }
                let name = String(decoding: bytes[start..<index], as: UTF8.self).trimmingWhitespace()
                index += 1
                guard let open = stack.popLast(), open.name == name else { throw fail("</\(name)> closes nothing open") }
                if stack.isEmpty {
                    guard root == nil else { throw fail("a second root") }
                    root = open
                } else {
                    stack[stack.count - 1].children.append(open)
                }
                continue
            }
            // A start tag: the name, then attributes (skipped, quotes respected), then > or />.
            index += 1
            let start = index
            while index < bytes.count, ![0x20, 0x09, 0x0A, 0x0D, 0x2F, 0x3E].contains(bytes[index]) { index += 1 }
            let name = String(decoding: bytes[start..<index], as: UTF8.self)
            guard !name.isEmpty else { throw fail("a tag without a name") }
            var quote: UInt8?
            while index < bytes.count {
                let byte = bytes[index]
                if let open = quote {
                    if byte == open { quote = nil }
                } else if byte == 0x22 || byte == 0x27 {
                    quote = byte
                } else if byte == 0x3E {
                    break
                }
                index += 1
            }
            guard index < bytes.count else { throw fail("an unterminated start tag") }
            let selfClosing = bytes[index - 1] == 0x2F
            index += 1
            let element = XMLElement(name: name, text: "", children: [])
            if selfClosing {
                if stack.isEmpty {
                    guard root == nil else { throw fail("a second root") }
                    root = element
                } else {
                    stack[stack.count - 1].children.append(element)
                }
            } else {
                guard stack.count < maximumDepth else { throw fail("nesting deeper than \(maximumDepth)") }
                stack.append(element)
            }
        }
        guard stack.isEmpty, let root else { throw fail(stack.isEmpty ? "no root element" : "<\(stack.last!.name)> never closes") }
        return root
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws(Invalid) -> String {
        guard bytes.contains(0x26) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard bytes[index] == 0x26 else { out.append(bytes[index]); index += 1; continue }
            guard let end = bytes[index...].firstIndex(of: 0x3B), end - index <= 12 else {
                throw Invalid(description: "XML: an unterminated entity reference")
            }
            let name = String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
            switch name {
            case "lt": out.append(0x3C)
            case "gt": out.append(0x3E)
            case "amp": out.append(0x26)
            case "quot": out.append(0x22)
            case "apos": out.append(0x27)
            default:
                let scalar: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") { scalar = UInt32(name.dropFirst(2), radix: 16) }
                else if name.hasPrefix("#") { scalar = UInt32(name.dropFirst(1)) }
                else { scalar = nil }
                guard let scalar, let value = Unicode.Scalar(scalar) else { throw Invalid(description: "XML: an unknown entity &\(name);") }
                out += Array(String(Character(value)).utf8)
            }
            index = end + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
