import AirlockPolicy
import AirlockStore

/// `airlock review`'s screen as a value (docs/design.md, 5.1 "Deciding, and what the human sees"): the pending queue, the
/// selection, what is open (the list, one proposal, a reason being typed) and the last result.
/// Keys go in, at most one action comes out (the CLI does it: show, approve, deny, quit), and
/// the screen renders to lines. Every line it renders goes through TerminalText: proposals
/// hold what an agent wrote (stack names, object keys, commit messages). Pure.
public struct ReviewScreen: Sendable, Equatable {
    public struct Item: Sendable, Equatable {
        public var id: String
        public var summary: String
        public var decision: String
        public var created: String

        public init(id: String, summary: String, decision: String, created: String) {
            self.id = id
            self.summary = summary
            self.decision = decision
            self.created = created
        }

        public init(_ proposal: Proposal) {
            self.init(id: proposal.id, summary: proposal.summary, decision: proposal.decision.rawValue,
                      created: String(proposal.createdAt.replacingOccurrences(of: "T", with: " ").prefix(19)))
        }
    }

    /// `confirm`: approving `target` waits for y (any other key cancels).
    public enum Mode: Sendable, Equatable { case list, detail, reason, confirm }

    public enum Key: Sendable, Equatable {
        case up, down, pageUp, pageDown, enter, escape, backspace
        case character(Character)
    }

    public enum Action: Sendable, Equatable {
        case show(String)
        case approve(String)
        case deny(String, reason: String)
        case quit
    }

    public var items: [Item] = []
    public var selected = 0
    public var mode = Mode.list
    /// The open proposal's full text (the CLI sets it after `show`).
    public var detail: [String] = []
    public var scroll = 0
    public var reason = ""
    /// The proposal a decision being made is for, fixed when it was started (the queue may
    /// move under it: another approver, an expiry, a new arrival).
    public var target: Item?
    /// The last action's outcome, or what is happening now.
    public var status = ""
    public let source: String

    public init(source: String) {
        self.source = source
    }

    public var current: Item? { items.indices.contains(selected) ? items[selected] : nil }

    /// The queue as the store has it now: the selection stays on its proposal when it is still
    /// there. Returns the ids that are new (each rings the bell).
    @discardableResult
    public mutating func update(_ fresh: [Item]) -> [String] {
        let known = Set(items.map(\.id))
        let keep = current?.id
        items = fresh
        if let keep, let index = items.firstIndex(where: { $0.id == keep }) {
            selected = index
        } else {
            selected = min(selected, max(0, items.count - 1))
            if let keep {
                // Decided elsewhere: never let a key meant for it land on its neighbour.
                if mode != .list || target?.id == keep { status = "\(keep) was decided elsewhere; nothing was done here" }
                mode = .list
                target = nil
                reason = ""
            }
        }
        return fresh.map(\.id).filter { !known.contains($0) }
    }

    public mutating func handle(_ key: Key) -> Action? {
        switch mode {
        case .confirm:
            let item = target
            mode = .list
            target = nil
            guard key == .character("y") || key == .character("Y"), let item else {
                status = "approval cancelled"
                return nil
            }
            status = "approving \(item.id)…"
            return .approve(item.id)
        case .reason:
            switch key {
            case .enter:
                guard let item = target else { mode = .list; return nil }
                let typed = reason
                mode = .list
                reason = ""
                target = nil
                return .deny(item.id, reason: typed)
            case .escape:
                mode = .list
                reason = ""
                target = nil
                status = "deny cancelled"
            case .backspace:
                if !reason.isEmpty { reason.removeLast() }
            case .character(let character):
                if reason.count < 500 { reason.append(character) }
            case .up, .down, .pageUp, .pageDown:
                break
            }
            return nil
        case .list, .detail:
            switch key {
            case .up:
                if mode == .detail { scroll = max(0, scroll - 1) } else { selected = max(0, selected - 1) }
            case .down:
                if mode == .detail { scroll = min(max(0, detail.count - 1), scroll + 1) } else { selected = min(max(0, items.count - 1), selected + 1) }
            case .pageUp:
                if mode == .detail { scroll = max(0, scroll - 20) }
            case .pageDown:
                if mode == .detail { scroll = min(max(0, detail.count - 1), scroll + 20) }
            case .enter:
                if mode == .detail { mode = .list; return nil }
                guard let item = current else { return nil }
                mode = .detail
                scroll = 0
                return .show(item.id)
            case .escape, .backspace:
                mode = .list
            case .character("q"), .character("Q"):
                return .quit
            case .character("a"):
                // Asked once more, naming it: a stray key never approves.
                guard let item = current else { return nil }
                target = item
                mode = .confirm
            case .character("d"):
                guard let item = current else { return nil }
                target = item
                mode = .reason
                reason = ""
            case .character("j"):
                return handle(.down)
            case .character("k"):
                return handle(.up)
            case .character:
                break
            }
            return nil
        }
    }

    /// The screen, `height` lines of at most `width` columns, every one neutralized.
    public func render(width: Int, height: Int) -> [String] {
        var lines: [String] = []
        let keys: String
        switch mode {
        case .list: keys = "↑/↓ move · enter details · a approve · d deny · q quit"
        case .detail: keys = "↑/↓ scroll · enter/esc back · a approve · d deny · q quit"
        case .reason: keys = "type the reason the agent is told · enter deny · esc cancel"
        case .confirm: keys = "y approve · any other key cancel"
        }
        lines.append("airlock review · \(source) · \(items.count) pending · \(keys)")
        lines.append("")
        let body = max(1, height - 4)
        switch mode {
        case .list, .reason, .confirm:
            if items.isEmpty {
                lines.append("  nothing is waiting for a decision; new proposals appear here (the terminal bell rings)")
            }
            let first = max(0, min(selected - body + 1, items.count - body))
            for (index, item) in items.enumerated().dropFirst(first).prefix(body) {
                lines.append("\(index == selected ? ">" : " ") \(item.id)  \(item.decision.reviewPadded(9))  \(item.created)  \(item.summary)")
            }
        case .detail:
            lines += detail.dropFirst(scroll).prefix(body)
        }
        while lines.count < height - 1 { lines.append("") }
        lines = Array(lines.prefix(height - 1))
        if mode == .reason, let item = target {
            lines.append("deny \(item.id) (\(item.summary)), reason: \(reason)_")
        } else if mode == .confirm, let item = target {
            lines.append("approve \(item.id) (\(item.summary)) and execute it now? y/N")
        } else {
            lines.append(status)
        }
        return lines.map { Self.fit(TerminalText.neutralize($0), width) }
    }

    /// Keys in what one read returned. A CSI sequence (ESC [ or ESC O, parameter bytes, one
    /// final byte) is one key: the arrows and page keys are read, any other (Ctrl+arrow's
    /// `ESC [1;5A`, a function key) is dropped whole, never read as letters (`A` would
    /// approve). An ESC that ends the read is Escape; ESC before anything else is dropped.
    public static func keys(_ bytes: [UInt8]) -> [Key] {
        var keys: [Key] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x1B {
                guard index + 1 < bytes.count else { keys.append(.escape); break }
                let introducer = bytes[index + 1]
                guard introducer == 0x5B || introducer == 0x4F else { index += 2; continue }  // Alt+key: dropped
                var end = index + 2
                while end < bytes.count, (0x20...0x3F).contains(bytes[end]) { end += 1 }
                guard end < bytes.count else { break }  // cut short: dropped
                let parameters = Array(bytes[(index + 2)..<end])
                switch (parameters, bytes[end]) {
                case ([], 0x41): keys.append(.up)
                case ([], 0x42): keys.append(.down)
                case ([0x35], 0x7E): keys.append(.pageUp)
                case ([0x36], 0x7E): keys.append(.pageDown)
                default: break
                }
                index = end + 1
                continue
            } else if byte == 0x0D || byte == 0x0A {
                keys.append(.enter)
            } else if byte == 0x7F || byte == 0x08 {
                keys.append(.backspace)
            } else if byte < 0x80 {
                keys.append(.character(Character(Unicode.Scalar(byte))))
            } else {
                // A multibyte character: the rest of it is in this read.
                var length = 1
                if byte >= 0xF0 { length = 4 } else if byte >= 0xE0 { length = 3 } else if byte >= 0xC0 { length = 2 }
                let slice = Array(bytes[index..<min(bytes.count, index + length)])
                if let text = String(validating: slice, as: UTF8.self), let character = text.first { keys.append(.character(character)) }
                index += length
                continue
            }
            index += 1
        }
        return keys
    }

    /// At most `width` characters (a line never wraps into the next one).
    static func fit(_ line: String, _ width: Int) -> String {
        let flat = line.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: "  ")
        return flat.count <= width ? flat : String(flat.prefix(max(1, width - 1))) + "…"
    }
}

extension String {
    func reviewPadded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
