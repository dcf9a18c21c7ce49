import AirlockCore
import Testing

@Suite struct JSONTests {
    @Test func roundTrip() throws {
        let text = #"{"a":[1,2.5,true,null,"x\"y\n"],"b":{"c":"é😀"},"d":-3}"#
        let value = try JSON.parse(text)
        #expect(value.serialized() == text)
        #expect(value["a"]?.array?.count == 5)
        #expect(value["b"]?["c"]?.string == "é😀")
        #expect(value["d"]?.int == -3)
    }

    @Test func escapes() throws {
        #expect(try JSON.parse(#""\u00e9\ud83d\ude00\t""#) == .string("é😀\t"))
        #expect(JSON.string("\u{1}").serialized() == #""\u0001""#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\\x\"", "1 2", "{\"a\":1,}", "\"\u{1}\""])
    func rejects(text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
    }
}
