import AirlockCore
import AirlockPolicy
import AirlockStore

/// Sends an approved GitHub request or git push exactly as pinned, to the host it was made
/// for, with the approver's credentials (docs/github.md). A push's result is git's report:
/// accepted only if every ref was (a ref that moved since the proposal is refused by the server).
public struct GitHubRunner: PayloadRunner {
    public let credentials: GitHubCredentials

    public init(credentials: GitHubCredentials) {
        self.credentials = credentials
    }

    public func run(_ payload: ProposalPayload, of proposal: Proposal, send: SendCheck) throws(RunFailure) -> ExecutionResult {
        let pinned: GitHubPinnedRequest
        let authorization: String?
        let isPush: Bool
        switch payload {
        case .gitPush(let push):
            pinned = GitHubPinnedRequest(host: push.host, method: "POST", path: push.repository + "/git-receive-pack", query: "",
                                         headers: [("Content-Type", "application/x-git-receive-pack-request"),
                                                   ("Accept", "application/x-git-receive-pack-result"), ("User-Agent", "git/airlock")],
                                         body: push.body)
            isPush = true
        case .github(let request):
            pinned = request
            isPush = false
        case .aws, .s3Multipart, .kubernetes, .command:
            throw .notSent("the GitHub runner does not send \(payload.type) proposals")
        }
        let host = pinned.host
        guard proposal.upstream == "https://\(host)" else {
            throw .notSent("the payload names the host \(host), not the proposal's upstream \(proposal.upstream)")
        }
        if case .gitPush(let push) = payload {
            authorization = credentials.gitAuthorization(host: host, path: push.repository)
        } else {
            authorization = credentials.apiToken(for: host).map { "token " + $0 }
        }
        guard authorization != nil else { throw .notSent("no credentials for \(host) here (gh auth login, GH_TOKEN, or a git credential helper)") }
        try send.check()
        let response = try ExecutionClient.exchange(pinned.outbound(connectHost: credentials.connectHost(host), trust: credentials.trust(),
                                                                    authorization: authorization)).answer()
        guard isPush, response.status == 200 else {
            return ExecutionResult(httpStatus: response.status, contentType: response.header("content-type"), output: response.body)
        }
        let report = GitPushInspection.readReport(response.body)
        return ExecutionResult(exitCode: report.accepted ? 0 : 1, contentType: "text/plain", output: Array(report.text.utf8),
                               error: report.accepted ? nil : "the server did not accept every ref")
    }
}
