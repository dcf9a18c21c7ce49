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

    public enum Mode: Sendable, Equatable { case list, detail, reason }

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
            if mode == .detail { mode = .list }
        }
        return fresh.map(\.id).filter { !known.contains($0) }
    }

    public mutating func handle(_ key: Key) -> Action? {
        switch mode {
        case .reason:
            switch key {
            case .enter:
                guard let item = current else { mode = .list; return nil }
                let typed = reason
                mode = .list
                reason = ""
                return .deny(item.id, reason: typed)
            case .escape:
                mode = .list
                reason = ""
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
            case .character("a"), .character("A"):
                guard let item = current else { return nil }
                status = "approving \(item.id)…"
                return .approve(item.id)
            case .character("d"), .character("D"):
                guard current != nil else { return nil }
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
        }
        lines.append("airlock review · \(source) · \(items.count) pending · \(keys)")
        lines.append("")
        let body = max(1, height - 4)
        switch mode {
        case .list, .reason:
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
        if mode == .reason, let item = current {
            lines.append("deny \(item.id), reason: \(reason)_")
        } else {
            lines.append(status)
        }
        return lines.map { Self.fit(TerminalText.neutralize($0), width) }
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
