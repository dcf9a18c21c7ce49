import AirlockCore
import AirlockPolicy

/// Drives each of the broker's credential loaders once, outside any sandbox, as a request would
/// (`airlock doctor --credentials --probe`): the AWS chain resolves keys, every kubeconfig
/// context's credentials are read (token files, certificates, exec plugins), gh's token is
/// looked up for each GitHub host and `git credential fill` (then netrc) is asked for git's.
/// Says what each found, never the secret itself. The tests run it under strace to check that
/// every file a loader opens is one CredentialSources lists (docs/sandbox.md, "Credential files").
public enum CredentialProbe {
    public struct Outcome: Sendable {
        public var loader: String
        public var ok: Bool
        public var detail: String
    }

    public static func run(environment: [String: String]) -> [Outcome] {
        var outcomes: [Outcome] = []
        let aws = HostCredentials(environment: environment, profile: nil)
        do {
            let keys = try aws.credentials()
            outcomes.append(Outcome(loader: "aws", ok: true, detail: "keys for \(keys.accessKeyID.prefix(4))… (region \(aws.defaultRegion()))"))
        } catch {
            outcomes.append(Outcome(loader: "aws", ok: false, detail: error.message))
        }
        do {
            if let clusters = try KubernetesClusters.load(environment: environment) {
                for context in clusters.config.contexts {
                    do {
                        let target = try clusters.target(context)
                        let how = target.authorization != nil ? "a bearer token" : "a client certificate or none"
                        outcomes.append(Outcome(loader: "kubernetes \(context.name)", ok: true, detail: "\(context.cluster.server) with \(how)"))
                    } catch {
                        outcomes.append(Outcome(loader: "kubernetes \(context.name)", ok: false, detail: error.message))
                    }
                }
            } else {
                outcomes.append(Outcome(loader: "kubernetes", ok: true, detail: "no kubeconfig context"))
            }
        } catch {
            outcomes.append(Outcome(loader: "kubernetes", ok: false, detail: error.message))
        }
        let github = GitHubCredentials(environment: environment)
        for host in github.hosts where host != GitHubCredentials.api {
            let token = github.apiToken(for: host)
            outcomes.append(Outcome(loader: "github \(host) API", ok: token != nil, detail: token == nil ? "no token" : "a token"))
            let git = github.gitAuthorization(host: host, path: "/")
            outcomes.append(Outcome(loader: "git \(host)", ok: git != nil, detail: git == nil ? "no credential" : "a credential"))
        }
        return outcomes
    }
}
