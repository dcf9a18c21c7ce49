@testable import AirlockBroker
import AirlockPolicy
import Testing

/// What the egress proxy can answer without a lookup (and so without leaving the event loop):
/// addresses, pinned names, localhost, and names resolved in the last 30 s, never longer.
@Suite struct EgressResolverTests {
    @Test func knownWithoutBlocking() {
        let resolver = EgressResolver(environment: ["AIRLOCK_EGRESS_RESOLVE": "pinned.test=10.1.2.3,10.1.2.4"])
        #expect(resolver.resolvedWithoutBlocking("192.0.2.7") == [IPAddress("192.0.2.7")!])
        #expect(resolver.resolvedWithoutBlocking("pinned.test") == [IPAddress("10.1.2.3")!, IPAddress("10.1.2.4")!])
        #expect(resolver.resolvedWithoutBlocking("localhost") == [IPAddress("127.0.0.1")!])
        #expect(resolver.resolvedWithoutBlocking("unknown.test") == nil, "a name never resolved needs a lookup")
    }

    @Test func recentAnswersLastThirtySecondsAndAreSharedByCopies() {
        let resolver = EgressResolver(environment: [:])
        let copy = resolver
        let address = IPAddress("198.51.100.9")!
        resolver.recent.store("cached.test", [address], now: 1000)
        #expect(copy.recent.lookup("cached.test", now: 1000) == [address], "copies share the answers")
        #expect(copy.recent.lookup("cached.test", now: 1029.9) == [address])
        #expect(copy.recent.lookup("cached.test", now: 1030.1) == nil, "after 30 s the name is looked up again")
        #expect(copy.recent.lookup("other.test", now: 1000) == nil)
        // Bounded: a flood of names never holds more than the limit.
        for index in 0..<(EgressResolver.RecentAnswers.limit + 10) { resolver.recent.store("n\(index).test", [address], now: 2000) }
        #expect(resolver.recent.answers.withLock { $0.count } <= EgressResolver.RecentAnswers.limit)
    }
}
