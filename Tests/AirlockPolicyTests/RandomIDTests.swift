import AirlockCore
import Testing

/// Proposal ids people type and the sandbox's dummy keys: from the alphabet, uniform, and
/// never repeating in practice.
@Suite struct RandomIDTests {
    @Test func lettersComeFromTheAlphabetUniformly() {
        let text = RandomID.make(40_000, alphabet: "abcd")
        #expect(text.count == 40_000)
        var counts: [Character: Int] = [:]
        for letter in text { counts[letter, default: 0] += 1 }
        #expect(Set(counts.keys) == Set("abcd"))
        // 10,000 expected each; 5 standard deviations is ±433.
        for (letter, count) in counts { #expect(abs(count - 10_000) < 433, "\(letter): \(count)") }
    }

    @Test func idsDoNotRepeat() {
        let ids = (0..<2_000).map { _ in RandomID.make(16) }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 16 && $0.allSatisfy(\.isHexDigit) })
        #expect(RandomID.make(0).isEmpty)
        // More than one getentropy call's worth (32 values).
        #expect(Set(RandomID.make(300, alphabet: "0123456789")).count == 10)
    }
}
