import Testing

@testable import AirlockPolicy

@Suite struct YAMLTests {
    func parse(_ text: String) throws -> YAMLNode? { try YAML.parse(text) }

    func entries(_ node: YAMLNode?) -> [YAMLNode.Entry] {
        if case .mapping(let entries)? = node?.value { return entries }
        return []
    }

    func items(_ node: YAMLNode?) -> [YAMLNode] {
        if case .sequence(let items)? = node?.value { return items }
        return []
    }

    @Test func blockMappingsSequencesAndScalars() throws {
        let node = try parse("""
            # comment
            name: default   # trailing comment
            quoted: "a # not a comment"
            single: 'it''s'
            nested:
              list:
                - one
                - "two"
              empty:
            sameIndentList:
            - x
            - y
            """)
        let top = entries(node)
        #expect(top.map(\.key) == ["name", "quoted", "single", "nested", "sameIndentList"])
        #expect(top[0].value.scalar == "default")
        #expect(top[1].value.scalar == "a # not a comment")
        #expect(top[2].value.scalar == "it's")
        let nested = entries(top[3].value)
        #expect(items(nested[0].value).map(\.scalar) == ["one", "two"])
        #expect(nested[1].value.isNull)
        #expect(items(top[4].value).map(\.scalar) == ["x", "y"])
        #expect(top[3].line == 5)
        #expect(nested[0].line == 6)
    }

    @Test func flowCollectionsIncludingMultiLine() throws {
        let node = try parse("""
            a: [s3:PutObject, "x, y", 'z']
            b: {operation: "ssm:GetParameter", when: {member: WithDecryption, equals: true}}
            c: [one,
                two]
            d: []
            e: {}
            """)
        let top = entries(node)
        #expect(items(top[0].value).map(\.scalar) == ["s3:PutObject", "x, y", "z"])
        let b = entries(top[1].value)
        #expect(b.map(\.key) == ["operation", "when"])
        #expect(entries(b[1].value).map(\.key) == ["member", "equals"])
        #expect(entries(b[1].value)[1].value.scalar == "true")
        #expect(items(top[2].value).map(\.scalar) == ["one", "two"])
        #expect(items(top[3].value).isEmpty)
        #expect(entries(top[4].value).isEmpty)
    }

    @Test func sequenceOfMappings() throws {
        let node = try parse("""
            sensitive:
              - operation: kms:Decrypt
                reason: returns plaintext
              - {operation: "sts:AssumeRole", reason: credentials}
            """)
        let list = items(entries(node)[0].value)
        #expect(list.count == 2)
        #expect(entries(list[0]).map(\.key) == ["operation", "reason"])
        #expect(entries(list[0])[1].value.scalar == "returns plaintext")
        #expect(entries(list[1])[0].value.scalar == "sts:AssumeRole")
    }

    @Test func blockScalars() throws {
        let node = try parse("""
            literal: |
              line one
                indented
              line three
            folded: >-
              a
              b
            next: x
            """)
        let top = entries(node)
        #expect(top[0].value.scalar == "line one\n  indented\nline three\n")
        #expect(top[1].value.scalar == "a b")
        #expect(top[2].value.scalar == "x")
    }

    @Test func quotedEscapes() throws {
        let node = try parse(#"k: "tab\there \u00e9 \"q\"""#)
        #expect(entries(node)[0].value.scalar == "tab\there é \"q\"")
    }

    @Test(arguments: [
        ("a: &anchor x\nb: *anchor", 1, "anchors"),
        ("a: x\nb: *anchor", 2, "aliases"),
        ("a: !!str x", 1, "tags"),
        ("a:\n\tb: x", 2, "tabs"),
        ("a: 1\na: 2", 2, "twice"),
        ("a: \"unterminated", 1, "unterminated"),
        ("a: [1, 2", 1, "unclosed"),
        ("a: x\n  b: y", 2, "indentation"),
        ("a: 1\n---\nb: 2", 2, "one YAML document"),
        ("a: {k: v, k: w}", 1, "twice"),
        ("- a\nb: c", 2, "unexpected"),
    ])
    func errorsNameTheLine(text: String, line: Int, words: String) {
        do {
            _ = try YAML.parse(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(words), "\(error)")
        }
    }

    @Test func emptyDocument() throws {
        #expect(try parse("# only a comment\n\n") == nil)
    }

    @Test func deepFlowNestingIsRefused() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: YAMLError.self) { try YAML.parse("a: " + deep) }
    }

    /// `#` lines inside a block scalar are its content (a config file a profile writes).
    @Test func commentLinesInsideBlockScalarsAreContent() throws {
        let text = "file: |\n  # first\n  key = 1\n\n  # second\n# not content\nnext: x\n"
        let node = try #require(try YAML.parse(text))
        guard case .mapping(let pairs) = node.value else { Issue.record("not a mapping"); return }
        #expect(pairs.first?.value.scalar == "# first\nkey = 1\n\n# second\n")
        #expect(pairs.last?.value.scalar == "x")
    }
}
