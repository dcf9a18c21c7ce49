import Foundation
import Testing

/// Rules end to end (docs/policy.md), against moto with signatures checked, the agent's real
/// aws CLI inside `airlock run`: one policy allows uploads to `scratch-*` without a human, asks
/// two approvers for anything destructive in env=prod, and forbids minting access keys. The
/// agent's three requests get exactly those outcomes, locally and on a team gate; the allowed
/// one is in the audit log with its policy id; the two-approver one runs only after the second
/// distinct approver; on the gate the launching human never counts and a host's own
/// `@airlock_allow` allows nothing.
@Suite struct PolicyTests {
    static let policy = """
        // Uploads to scratch buckets go through without a human.
        @id("scratch-uploads")
        @airlock_allow
        permit (principal, action == Action::"aws:s3:PutObject", resource)
        when { resource.name like "arn:aws:s3:::scratch-*" };

        // Anything destructive in production needs two people, within an hour.
        @id("prod-destructive")
        @approvals("2")
        @expires("1h")
        permit (principal, action in Action::"mutation", resource)
        when { context.labels.contains("destructive") && resource.tags.contains("env=prod") };

        // Long-lived keys are never minted by an agent.
        @id("no-access-keys")
        forbid (principal, action == Action::"aws:iam:CreateAccessKey", resource);
        """

    static let template = #"{"Resources":{"Data":{"Type":"AWS::S3::Bucket","Properties":{"BucketName":"prod-data"}}}}"#

    static let script = """
        printf hello > note.txt
        aws s3api put-object --bucket scratch-1 --key note.txt --body note.txt > put.out 2>&1; echo "put=$?"; cat put.out
        aws cloudformation delete-stack --stack-name prod 2>&1; echo "delete=$?"
        aws iam create-access-key --user-name bob 2>&1; echo "key=$?"
        """

    func world() throws -> (Scene, Moto)? {
        guard Launch.anyAvailable(), PythonTools.available() else { return nil }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        let moto = try Moto()
        _ = moto.aws(["s3api", "create-bucket", "--bucket", "scratch-1"])
        _ = moto.aws(["cloudformation", "create-stack", "--stack-name", "prod", "--template-body", Self.template, "--tags", "Key=env,Value=prod"])
        _ = moto.aws(["iam", "create-user", "--user-name", "bob"])
        return (scene, moto)
    }

    func stackExists(_ moto: Moto) -> Bool {
        moto.aws(["cloudformation", "describe-stacks", "--stack-name", "prod", "--query", "Stacks[0].StackStatus", "--output", "text"]).stdout
            .contains("CREATE_COMPLETE")
    }

    /// The three outcomes as the agent saw them, and what moto holds after.
    func expectTheAgentsOutcomes(_ out: Outcome, _ moto: Moto, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = out.stdout + out.stderr
        #expect(text.contains("put=0") && text.contains("ETag"), "the upload ran without a human: \(text)", sourceLocation: sourceLocation)
        #expect(moto.aws(["s3", "cp", "s3://scratch-1/note.txt", "-"]).stdout == "hello", sourceLocation: sourceLocation)
        #expect(text.contains("AirlockProposalPending") && !text.contains("delete=0"), "\(text)", sourceLocation: sourceLocation)
        #expect(text.contains("AirlockDenied") && text.contains("no-access-keys") && !text.contains("key=0"), "\(text)", sourceLocation: sourceLocation)
        let keys = moto.aws(["iam", "list-access-keys", "--user-name", "bob", "--query", "AccessKeyMetadata", "--output", "json"]).stdout
        #expect(keys.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "no key was minted: \(keys)", sourceLocation: sourceLocation)
        #expect(stackExists(moto), "nothing deleted yet", sourceLocation: sourceLocation)
    }

    @Test func theRulesDecideLocally() throws {
        guard let (scene, moto) = try world() else { return }
        scene.write(scene.home + "/.config/airlock/policy.cedar", Self.policy, mode: 0o600)
        let out = scene.agent(Self.script + "\n" + """
            cat \(scene.home)/.config/airlock/policy.cedar > /dev/null 2>&1; echo "read=$?"
            """, moto: moto)
        expectTheAgentsOutcomes(out, moto)
        #expect((out.stdout + out.stderr).contains("read=1") || !(out.stdout + out.stderr).contains("read=0"), "the policy is not visible inside: \(out)")
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        let id = try #require(ids.first, "\(out)")
        #expect(ids.count == 1, "only the delete waits for people: \(ids)")
        // What the approver is shown.
        let shown = scene.airlock(["show", id]).stdout
        #expect(shown.contains("rules:     needs 2 distinct approvers (policy prod-destructive)") && shown.contains("2 more approvers needed"), "\(shown)")
        // The audit log: the upload approved by its policy, the key refused by its policy.
        let audit = runProcess("/usr/bin/sqlite3", [scene.stateDir + "/airlock.db", "SELECT event || ' ' || actor || ' ' || detail FROM audit ORDER BY seq"],
                               environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp").stdout
        #expect(audit.contains("approved policy:scratch-uploads") && audit.contains("allowed without a human by policy scratch-uploads"), "\(audit)")
        #expect(audit.contains("forbidden by policy no-access-keys"), "\(audit)")
        // The human who launched it approves: counted, one of two; again: refused.
        let first = scene.airlock(["approve", id, "--reason", "checked the preview"])
        #expect(first.status == 0 && first.stdout.contains("approval counted"), "\(first)")
        #expect(stackExists(moto))
        let again = scene.airlock(["approve", id])
        #expect(again.status != 0 && again.stderr.contains("already approved"), "\(again)")
        // A second local identity (another Unix user with access to the store) completes it.
        guard getuid() == 0, let other = Launch.user else {
            Issue.record("a second local approver needs root to act as \(Launch.user?.name ?? "airlock-test")")
            return
        }
        _ = runProcess("/bin/chmod", ["-R", "a+rwX", scene.stateDir], environment: ["PATH": "/usr/bin:/bin"], directory: "/tmp")
        let second = runProcess("/usr/bin/setpriv", ["--reuid=\(other.uid)", "--regid=\(other.gid)", "--clear-groups", "--",
                                                     Stage.airlock, "approve", id, "--state-dir", scene.stateDir, "--reason", "second pair of eyes"],
                                environment: scene.environment.merging(Moto.keys) { $1 }, directory: "/tmp", timeout: 120)
        #expect(second.status == 0 && second.stdout.contains("succeeded"), "\(second)")
        #expect(!stackExists(moto), "deleted after the second distinct approver")
        let verified = scene.airlock(["audit", "verify"])
        #expect(verified.status == 0, "\(verified)")
    }

    /// A deadline is a deny: the agent waiting on a proposal past its `@expires` is told
    /// `AirlockExpired`, and nothing runs (about a minute: @expires is at least 1m).
    @Test func anAgentWaitingPastTheDeadlineIsToldItExpired() throws {
        guard let (scene, moto) = try world() else { return }
        scene.write(scene.home + "/.config/airlock/policy.cedar", """
            @id("queues-quickly")
            @expires("1m")
            permit (principal, action == Action::"aws:sqs:CreateQueue", resource);
            """, mode: 0o600)
        let out = scene.agent("""
            aws sqs create-queue --queue-name late > made.out 2>&1
            id=$(grep -oE 'Proposal [0-9a-f]{8}' made.out | cut -d' ' -f2)
            echo "proposal=$id"
            airlock wait "$id" --timeout 120; echo "wait=$?"
            """, moto: moto, timeout: 200)
        let text = out.stdout + out.stderr
        #expect(text.contains("AirlockExpired") && text.contains("wait=1") && text.contains("expired"), "\(text)")
        let id = try #require(text.components(separatedBy: "proposal=").dropFirst().first?.prefix(8).description, "\(text)")
        let shown = scene.airlock(["show", id, "--json"]).stdout
        #expect(shown.contains("\"state\": \"expired\"") || shown.contains("\"state\":\"expired\""), "\(shown)")
        let approve = scene.airlock(["approve", id])
        #expect(approve.status != 0 && approve.stderr.contains("expired"), "\(approve)")
        #expect(!moto.aws(["sqs", "list-queues"]).stdout.contains("late"), "nothing ran")
    }

    @Test func theGatesRulesDecideAndAHostOnlyTightens() throws {
        guard let (scene, moto) = try world() else { return }
        let folder = makeTemporaryDirectory(prefix: "airlock-gate-policy")
        try Self.policy.write(toFile: folder + "/gate-policy.cedar", atomically: true, encoding: .utf8)
        let gate = try TeamGate(store: "postgres", upstream: moto.url, extra: "policy: \(folder)/gate-policy.cedar\n", keys: Moto.keys,
                                folder: folder, postgres: try TeamGate.freshPostgres())
        let host = gate.enrol("host", "builder")
        let alice = gate.enrol("user", "alice"), bob = gate.enrol("user", "bob"), carol = gate.enrol("user", "carol")
        scene.write(scene.root + "/host.token", host + "\n", mode: 0o600)
        // carol launches the agent: her own approver token is where `airlock run` looks.
        scene.write(scene.home + "/.config/airlock/gate-token", carol + "\n", mode: 0o600)
        // The host's own policy tries to allow queues without a human: it cannot, on a gate.
        scene.write(scene.home + "/.config/airlock/policy.cedar", """
            @id("host-allows-queues")
            @airlock_allow
            permit (principal, action == Action::"aws:sqs:CreateQueue", resource);
            """, mode: 0o600)
        scene.write(folder + "/carol.token", carol + "\n", mode: 0o600)
        scene.write(folder + "/bob.token", bob + "\n", mode: 0o600)
        scene.chownTree()
        let out = scene.agent(Self.script + "\n" + """
            aws sqs create-queue --queue-name q1 2>&1; echo "queue=$?"
            """, moto: moto, options: ["--gate", gate.url, "--gate-token-file", scene.root + "/host.token"])
        expectTheAgentsOutcomes(out, moto)
        let ids = Scene.proposalIDs(in: out.stdout + out.stderr)
        guard ids.count == 2 else { Issue.record("two proposals wait (the delete, the queue): \(out)"); return }
        let (delete, queue) = (ids[0], ids[1])
        #expect(!(out.stdout + out.stderr).contains("queue=0"), "the host's @airlock_allow does not allow on the gate: \(out)")
        let queued = gate.call("GET", "/v1/proposals/\(queue)", token: alice).json
        #expect(queued["state"] as? String == "pending" && queued["approvals_needed"] as? Int == 1, "\(queued)")
        let shown = gate.call("GET", "/v1/proposals/\(delete)", token: alice).json
        let requirement = shown["requirement"] as? [String: Any]
        #expect(requirement?["approvals"] as? Int == 2 && (requirement?["policies"] as? [String]) == ["prod-destructive"], "\(shown)")
        // The gate's audit: the upload approved by its policy, the key refused by its policy.
        let audit = "\(gate.call("GET", "/v1/audit", token: alice).json)"
        #expect(audit.contains("policy:scratch-uploads") && audit.contains("forbidden by policy no-access-keys"), "\(audit.prefix(3000))")
        // carol launched the session: her approval never counts, by the API or the CLI.
        let byAPI = gate.call("POST", "/v1/proposals/\(delete)/approve", token: carol, body: ["reason": "mine"])
        #expect(byAPI.status == 403 && "\(byAPI.json)".contains("launched the session"), "\(byAPI)")
        let byCLI = scene.airlock(["approve", delete, "--gate", gate.url, "--gate-token-file", folder + "/carol.token"])
        #expect(byCLI.status != 0 && byCLI.stderr.contains("launched the session"), "\(byCLI)")
        let one = gate.call("POST", "/v1/proposals/\(queue)/approve", token: carol, body: ["reason": "mine"])
        #expect(one.status == 403, "not even where one approver is enough: \(one)")
        // alice counts once; bob, by the CLI, is the second distinct approver: it runs.
        let first = gate.call("POST", "/v1/proposals/\(delete)/approve", token: alice, body: ["reason": "checked"])
        #expect(first.status == 200 && first.json["state"] as? String == "pending", "\(first)")
        #expect(stackExists(moto))
        let twice = gate.call("POST", "/v1/proposals/\(delete)/approve", token: alice, body: ["reason": "again"])
        #expect(twice.status == 403 && "\(twice.json)".contains("already approved"), "\(twice)")
        let second = scene.airlock(["approve", delete, "--gate", gate.url, "--gate-token-file", folder + "/bob.token", "--reason", "agreed"])
        #expect(second.status == 0 && second.stdout.contains("succeeded"), "\(second)")
        #expect(!stackExists(moto), "deleted after the second distinct approver")
        let queueApproved = gate.call("POST", "/v1/proposals/\(queue)/approve", token: alice, body: ["reason": "fine"])
        #expect(queueApproved.json["state"] as? String == "succeeded", "\(queueApproved)")
        // A launcher token that is not an approver's is refused, never taken as a name.
        let forged = gate.call("POST", "/v1/sessions", token: host, body: ["id": "forged-session-1", "launcher_token": host])
        #expect(forged.status == 401, "\(forged)")
    }

    /// `require_launcher: true` in gate.yaml: a session that does not name its launcher by
    /// their approver token is refused; one that does is recorded with them.
    @Test func aGateCanRequireTheLauncher() throws {
        let gate = try TeamGate(store: "sqlite", upstream: "http://127.0.0.1:9", extra: "require_launcher: true\n")
        let host = gate.enrol("host", "builder"), alice = gate.enrol("user", "alice")
        let without = gate.call("POST", "/v1/sessions", token: host, body: ["id": "session-without-1"])
        #expect(without.status == 401 && "\(without.json)".contains("require_launcher"), "\(without)")
        let with = gate.call("POST", "/v1/sessions", token: host, body: ["id": "session-with-1", "launcher_token": alice])
        #expect(with.status == 200 || with.status == 201, "\(with)")
    }

    /// The agent writes its workspace: a policy there would be the agent's own rules for the
    /// next session. `--policy` inside the workspace or the state directory is refused before
    /// anything runs; a policy that does not validate stops the launch too.
    @Test func aPolicyTheAgentCouldWriteIsRefused() throws {
        guard Launch.anyAvailable() else { return }
        let scene = Scene(getuid() == 0 ? .root : .unprivileged)
        scene.write(scene.workspace + "/policy.cedar", "@airlock_allow permit (principal, action, resource);\n")
        scene.write(scene.stateDir + "/policy.cedar", "@airlock_allow permit (principal, action, resource);\n")
        for path in [scene.workspace + "/policy.cedar", scene.stateDir + "/policy.cedar", scene.workspace + "/../workspace/policy.cedar"] {
            let out = scene.run(["/bin/sh", "-c", "echo ran"], options: ["--policy", path])
            #expect(out.status == 125 && out.stderr.contains("where the agent writes") && !out.stdout.contains("ran"), "\(path): \(out)")
        }
        scene.write(scene.root + "/bad.cedar", "permit (principal, action == Action::\"aws:s3:PutObjet\", resource);\n")
        let bad = scene.run(["/bin/sh", "-c", "echo ran"], options: ["--policy", scene.root + "/bad.cedar"])
        #expect(bad.status == 125 && bad.stderr.contains("PutObject") && !bad.stdout.contains("ran"), "\(bad)")
    }
}
