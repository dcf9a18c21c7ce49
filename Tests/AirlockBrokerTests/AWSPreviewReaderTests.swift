@testable import AirlockBroker
import AirlockCore
import AirlockPolicy
import Glibc
import Testing

/// The preview reader's bounds (docs/previews.md): a slow upstream stops the preview at its
/// deadline, a long one at its read budget, each saying so in a note; answers are kept per
/// session, so a burst of proposals on one target reads it once.
@Suite struct AWSPreviewReaderTests {
    static let ok = ExecutionClient.Response(status: 200, headers: [], body: Array("<A><B>1</B></A>".utf8))

    @Test func aSlowUpstreamStopsAtTheDeadline() {
        let reader = AWSPreviewReader(send: .init(read: { _, _, _ in usleep(120_000); return .success(Self.ok) }), cache: AWSPreviewCache(),
                                      reads: 40, seconds: 0.3)
        var answered = 0
        for index in 0..<10 where reader.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) != nil {
            answered += 1
        }
        #expect(answered >= 2 && answered <= 4, "\(answered)")
        #expect(reader.notes.contains { $0.hasPrefix("stopped after 300 ms") }, "\(reader.notes)")
    }

    @Test func theReadBudgetAndTheCache() {
        let cache = AWSPreviewCache()
        let calls = Counter()
        let send = AWSPreviewReader.Send(read: { _, _, _ in calls.add(); return .success(Self.ok) })
        let reader = AWSPreviewReader(send: send, cache: cache, reads: 3)
        for index in 0..<5 { _ = reader.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) }
        #expect(calls.value == 3 && reader.notes.contains { $0.hasPrefix("stopped after 3 reads") }, "\(reader.notes)")
        // Another proposal's preview on the same targets: answered from the cache.
        let next = AWSPreviewReader(send: send, cache: cache, reads: 3)
        for index in 0..<3 { #expect(next.call("s", "Op", AWSRequest(method: "GET", path: "/\(index)", query: "", headers: [], body: [])) != nil) }
        #expect(calls.value == 3 && next.reads == 0)
        // A failed read is a note, not a failure of the proposal.
        let failing = AWSPreviewReader(send: .init(read: { _, _, _ in .failure(AirlockError("connection refused")) }), cache: AWSPreviewCache())
        #expect(failing.call("cloudformation", "DescribeStacks", AWSRequest(method: "POST", path: "/", query: "", headers: [], body: [])) == nil)
        #expect(failing.notes == ["cloudformation:DescribeStacks: connection refused"])
    }

    final class Counter: @unchecked Sendable {
        private var count = 0
        private var lock = pthread_mutex_t()
        init() { pthread_mutex_init(&lock, nil) }
        func add() { pthread_mutex_lock(&lock); count += 1; pthread_mutex_unlock(&lock) }
        var value: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return count }
    }
}
