import AirlockCore
import AirlockPolicy
import Glibc

/// The AWS catalog on disk (`profiles/aws/`): the index and overrides read once, each
/// service's file on first use. Thread-safe.
public final class AWSCatalogFiles: @unchecked Sendable {
    public let directory: String
    private var mutex = pthread_mutex_t()
    private var loadedIndex: AWSCatalogIndex?
    private var loadedServices: [String: AWSService] = [:]
    private var loadedClassifier: AWSClassifier?

    public init(directory: String) throws(AirlockError) {
        guard access(directory + "/index.json", R_OK) == 0 else {
            throw AirlockError("no AWS catalog at \(directory)/index.json", hint: "regenerate it with scripts/aws-catalog")
        }
        self.directory = directory
        pthread_mutex_init(&mutex, nil)
    }

    /// Thrown by `warmOnly` reads of what is not loaded yet: the caller may not block.
    static let notLoaded = AirlockError("the AWS catalog is not loaded yet")

    /// The index, parsed on first use. `warmOnly`: never read a file (the event loop's
    /// quick reads), throwing `notLoaded` instead.
    public func index(warmOnly: Bool = false) throws(AirlockError) -> AWSCatalogIndex {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let loadedIndex { return loadedIndex }
        if warmOnly { throw Self.notLoaded }
        do {
            let index = try AWSCatalogIndex(jsonText: try Self.read(directory + "/index.json"))
            loadedIndex = index
            return index
        } catch let error as AirlockError {
            throw error
        } catch {
            throw AirlockError("the AWS catalog in \(directory) is unreadable: \(error)", hint: "regenerate it with scripts/aws-catalog")
        }
    }

    /// Finds `profiles/aws` the way profiles are found (next to the binary or the checkout),
    /// or `AIRLOCK_AWS_CATALOG`.
    public static func locate(environment: [String: String], profileSearchPath: [String]) throws(AirlockError) -> AWSCatalogFiles {
        if let explicit = environment["AIRLOCK_AWS_CATALOG"] { return try AWSCatalogFiles(directory: explicit) }
        for dir in profileSearchPath where access(dir + "/aws/index.json", R_OK) == 0 {
            return try AWSCatalogFiles(directory: dir + "/aws")
        }
        throw AirlockError("no AWS catalog (profiles/aws/index.json) found",
                           hint: "looked in \(profileSearchPath.joined(separator: ", ")); set AIRLOCK_AWS_CATALOG")
    }

    static func read(_ path: String) throws(AirlockError) -> String {
        do {
            return try readTextFile(path, limit: 64 << 20)
        } catch {
            throw AirlockError("cannot read \(path): \(error.message)")
        }
    }

    /// The service by its broker path name, or nil when the catalog has none.
    public func service(_ name: String, warmOnly: Bool = false) throws(AirlockError) -> AWSService? {
        guard ProfileName.isValid(name), try index(warmOnly: warmOnly).entry(named: name) != nil else { return nil }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let service = loadedServices[name] { return service }
        if warmOnly { throw Self.notLoaded }
        do {
            let service = try AWSService(jsonText: try Self.read(directory + "/services/\(name).json"))
            loadedServices[name] = service
            return service
        } catch let error as AirlockError {
            throw error
        } catch {
            throw AirlockError("the AWS catalog entry for \(name) is unreadable: \(error)")
        }
    }

    public func classifier(warmOnly: Bool = false) throws(AirlockError) -> AWSClassifier {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let loadedClassifier { return loadedClassifier }
        if warmOnly { throw Self.notLoaded }
        do {
            let overrides = try AWSOverrides(yamlText: try Self.read(directory + "/overrides.yaml"),
                                             source: directory + "/overrides.yaml")
            let classifier = AWSClassifier(overrides: overrides)
            loadedClassifier = classifier
            return classifier
        } catch let error as AirlockError {
            throw error
        } catch {
            throw AirlockError("\(error)")
        }
    }
}

