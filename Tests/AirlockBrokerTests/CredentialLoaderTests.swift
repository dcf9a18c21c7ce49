@testable import AirlockBroker
import AirlockPolicy
import Foundation
import Testing

/// The broker's credential loaders and what the agent can write (docs/sandbox.md, "Credential
/// files"): a shared AWS file inside the workspace is read once, before the agent starts, so a
/// file the agent replaces, creates or moves aside cannot name the credential_process the
/// broker runs outside the sandbox; one outside is read when needed (rotated keys are seen).
@Suite struct CredentialLoaderTests: FileFixtures {
    @Test func awsFilesTheAgentCanWriteAreReadOnceBeforeItStarts() throws {
        let workspace = try directory("workspace")
        let outside = try directory("outside")
        let marker = outside + "/credential-process-ran"
        try write(workspace + "/aws-credentials", "[default]\naws_access_key_id = AKIDWORKSPACEDUMMY\naws_secret_access_key = first\n")
        let environment = ["HOME": outside, "AWS_SHARED_CREDENTIALS_FILE": workspace + "/aws-credentials",
                           "AWS_CONFIG_FILE": workspace + "/aws-config"]
        let loader = HostCredentials(environment: environment, profile: nil, writableRoots: WritableRoots([workspace]))
        // The agent rewrites one and creates the other, naming a program of its own.
        try write(workspace + "/aws-credentials", "[default]\n")
        try write(workspace + "/aws-config", "[default]\ncredential_process = /bin/sh -c 'touch \(marker)'\n")
        let keys = try loader.credentials()
        #expect(keys.accessKeyID == "AKIDWORKSPACEDUMMY" && keys.secretAccessKey == "first")
        #expect(!FileManager.default.fileExists(atPath: marker), "the broker ran a credential_process the agent wrote")

        // Outside what the agent can write, the file is read when needed.
        try write(outside + "/aws-credentials", "[default]\naws_access_key_id = AKIDOUTSIDEDUMMY\naws_secret_access_key = one\n")
        let rotating = HostCredentials(environment: ["HOME": outside, "AWS_SHARED_CREDENTIALS_FILE": outside + "/aws-credentials"],
                                       profile: nil, writableRoots: WritableRoots([workspace]))
        try write(outside + "/aws-credentials", "[default]\naws_access_key_id = AKIDROTATEDDUMMY\naws_secret_access_key = two\n")
        #expect(try rotating.credentials().accessKeyID == "AKIDROTATEDDUMMY")
    }

    /// `~/.aws` is a symlink into the workspace (a dotfiles checkout as the workspace): the
    /// files behind it are the agent's to write, though their path names the home. Read once,
    /// at start; one absent then (created later through the link) is never read.
    @Test func awsFilesLinkedIntoTheWorkspaceAreTheAgents() throws {
        let workspace = try directory("workspace")
        let home = try directory("home")
        let marker = home + "/credential-process-ran"
        try FileManager.default.createDirectory(atPath: workspace + "/dotfiles/aws", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: home + "/.aws", withDestinationPath: workspace + "/dotfiles/aws")
        try write(home + "/.aws/credentials", "[default]\naws_access_key_id = AKIDLINKEDDUMMY\naws_secret_access_key = first\n")
        let loader = HostCredentials(environment: ["HOME": home], profile: nil, writableRoots: WritableRoots([workspace]))
        try write(workspace + "/dotfiles/aws/credentials", "[default]\n")
        try write(workspace + "/dotfiles/aws/config", "[default]\ncredential_process = /bin/sh -c 'touch \(marker)'\n")
        #expect(try loader.credentials().accessKeyID == "AKIDLINKEDDUMMY")
        #expect(!FileManager.default.fileExists(atPath: marker), "the broker ran a credential_process written through the link")
        // The roots themselves may be links too: compared resolved on both sides.
        try FileManager.default.createSymbolicLink(atPath: home + "/ws-link", withDestinationPath: workspace)
        #expect(WritableRoots([home + "/ws-link"]).contain(home + "/.aws/config"))
        #expect(!WritableRoots([workspace]).contain(home + "/other/config"))
    }

    @Test func netrcIsReadAsLibcurlReadsIt() {
        let text = """
            # a comment line is not a token for curl either, but words are
            machine gh.test login bob password s3cret
            macdef init
            machine evil.test login x password y

            machine other.test
              login carol
              password "two words"
            default login anonymous password guest
            """
        #expect(Netrc.entry(text, host: "gh.test") == Netrc.Entry(login: "bob", password: "s3cret"))
        #expect(Netrc.entry(text, host: "GH.TEST")?.login == "bob")
        #expect(Netrc.entry(text, host: "evil.test")?.login == "anonymous", "a macro's body is not an entry")
        #expect(Netrc.entry(text, host: "nowhere.test") == Netrc.Entry(login: "anonymous", password: "guest"))
        #expect(Netrc.entry("machine a.test login u password p", host: "b.test") == nil)
    }
}
