import AirlockExecution
import Testing

/// `airlock review`'s screen, without a terminal (docs/design.md 5.1): keys in, actions out.
@Suite struct ReviewScreenTests {
    static let items = [
        ReviewScreen.Item(id: "aaaa1111", summary: "sqs:CreateQueue", decision: "mutation", created: "2026-12-06 10:00:00"),
        ReviewScreen.Item(id: "bbbb2222", summary: "cloudformation:DeleteStack prod\u{1B}[2J\u{202E}", decision: "mutation", created: "2026-12-06 10:01:00"),
    ]

    @Test func arrivalsMovesShowApproveAndDenyWithAReason() {
        var screen = ReviewScreen(source: "local store")
        #expect(screen.update(Self.items) == ["aaaa1111", "bbbb2222"])
        #expect(screen.update(Self.items).isEmpty, "known ones ring no bell")
        #expect(screen.handle(.down) == nil && screen.current?.id == "bbbb2222")
        #expect(screen.handle(.enter) == .show("bbbb2222") && screen.mode == .detail)
        #expect(screen.handle(.enter) == nil && screen.mode == .list)
        // a asks once more; only y approves, anything else cancels.
        #expect(screen.handle(.character("a")) == nil && screen.mode == .confirm)
        #expect(screen.handle(.character("A")) == nil && screen.mode == .list)
        _ = screen.handle(.character("a"))
        #expect(screen.handle(.character("y")) == .approve("bbbb2222"))
        // d, a reason typed (q is a letter there), backspace, enter: the deny with that reason.
        #expect(screen.handle(.character("d")) == nil && screen.mode == .reason)
        for character in "not in prodq" { _ = screen.handle(.character(character)) }
        _ = screen.handle(.backspace)
        #expect(screen.handle(.enter) == .deny("bbbb2222", reason: "not in prod") && screen.mode == .list)
        // Escape cancels a reason; q quits from the list.
        _ = screen.handle(.character("d"))
        #expect(screen.handle(.escape) == nil && screen.mode == .list)
        #expect(screen.handle(.character("q")) == .quit)
        // The selection follows its proposal when others arrive above it; gone, it stays in range.
        let newer = ReviewScreen.Item(id: "cccc3333", summary: "s3:PutObject", decision: "mutation", created: "2026-12-06 10:02:00")
        #expect(screen.update([newer] + Self.items) == ["cccc3333"] && screen.current?.id == "bbbb2222")
        screen.update([newer])
        #expect(screen.current?.id == "cccc3333")
    }

    /// A decision is for the proposal it was started on: one decided elsewhere meanwhile is
    /// not replaced by its neighbour.
    @Test func aDecisionNeverMovesToAnotherProposal() {
        var screen = ReviewScreen(source: "local store")
        screen.update(Self.items)
        _ = screen.handle(.down)
        _ = screen.handle(.character("a"))
        screen.update([Self.items[0]])  // bbbb2222 was decided on another screen
        #expect(screen.mode == .list && screen.status.contains("decided elsewhere"))
        #expect(screen.handle(.character("y")) == nil, "a y meant for bbbb2222 approved aaaa1111")
        _ = screen.handle(.character("d"))
        for character in "later" { _ = screen.handle(.character(character)) }
        let newer = ReviewScreen.Item(id: "cccc3333", summary: "s3:PutObject", decision: "mutation", created: "2026-12-06 10:02:00")
        screen.update([newer, Self.items[0]])
        #expect(screen.handle(.enter) == .deny("aaaa1111", reason: "later"))
    }

    /// Keys from raw terminal bytes: a Ctrl or Shift arrow (`ESC [1;5A`) is one key, never the
    /// letters `A` (approve) or `D` (deny); a function key is dropped whole.
    @Test(arguments: [
        ([0x1B, 0x5B, 0x41], [ReviewScreen.Key.up]),
        ([0x1B, 0x4F, 0x42], [.down]),
        ([0x1B, 0x5B, 0x31, 0x3B, 0x35, 0x41], []),
        ([0x1B, 0x5B, 0x31, 0x3B, 0x32, 0x44], []),
        ([0x1B, 0x5B, 0x35, 0x7E, 0x1B, 0x5B, 0x36, 0x7E], [.pageUp, .pageDown]),
        ([0x1B, 0x5B, 0x31, 0x35, 0x7E], []),
        ([0x1B], [.escape]),
        ([0x1B, 0x61], []),
        ([0x61, 0x0D, 0x7F], [.character("a"), .enter, .backspace]),
        ([0xC3, 0xA9], [.character("é")]),
    ] as [([UInt8], [ReviewScreen.Key])])
    func keysAreReadWhole(_ bytes: [UInt8], _ keys: [ReviewScreen.Key]) {
        #expect(ReviewScreen.keys(bytes) == keys)
    }

    @Test func everyRenderedLineIsNeutralizedAndFits() {
        var screen = ReviewScreen(source: "local store")
        screen.update(Self.items)
        let lines = screen.render(width: 60, height: 10)
        #expect(lines.count == 10)
        #expect(lines.allSatisfy { $0.count <= 60 && $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x202E } }, "\(lines)")
        #expect(screen.render(width: 160, height: 10).contains { $0.contains("\\e[2J<U+202E>") })
        var empty = ReviewScreen(source: "gate https://gate")
        empty.update([])
        #expect(empty.render(width: 120, height: 6).contains { $0.contains("nothing is waiting") })
    }
}
