import AirlockCore
import CSQLite
import Glibc

/// A thin, synchronous SQLite connection: one per process, used from one thread at a time
/// (the store serializes access).
final class SQLiteDatabase: @unchecked Sendable {
    private var handle: OpaquePointer?
    let path: String

    init(path: String) throws(AirlockError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw AirlockError("cannot open the proposal store \(path): \(message)",
                               hint: "check the state directory's permissions (--state-dir)")
        }
        handle = db
        // Another process (the broker, a human's approve) may hold the write lock briefly.
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit { sqlite3_close_v2(handle) }

    func execute(_ sql: String) throws(AirlockError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "error \(rc)"
            sqlite3_free(message)
            throw AirlockError("proposal store: \(text)")
        }
    }

    func prepare(_ sql: String) throws(AirlockError) -> SQLiteStatement {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw AirlockError("proposal store: \(errorMessage) in \(sql)")
        }
        return SQLiteStatement(statement, database: self)
    }

    var errorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in a write transaction (BEGIN IMMEDIATE: the write lock is taken up front,
    /// so two processes never both decide to run the same proposal).
    func transaction<T>(_ body: () throws(AirlockError) -> T) throws(AirlockError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

final class SQLiteStatement {
    private let statement: OpaquePointer
    private let database: SQLiteDatabase

    init(_ statement: OpaquePointer, database: SQLiteDatabase) {
        self.statement = statement
        self.database = database
    }

    deinit { sqlite3_finalize(statement) }

    enum Value {
        case null
        case integer(Int64)
        case text(String)
        case blob([UInt8])
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ values: [Value]) throws(AirlockError) {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let number): rc = sqlite3_bind_int64(statement, index, number)
            case .text(let text): rc = sqlite3_bind_text(statement, index, text, -1, Self.transient)
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
            }
            if rc != SQLITE_OK { throw AirlockError("proposal store: cannot bind a value: \(database.errorMessage)") }
        }
    }

    /// Runs a statement that returns no rows.
    func run(_ values: [Value] = []) throws(AirlockError) {
        try bind(values)
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw AirlockError("proposal store: \(database.errorMessage)") }
    }

    /// Runs a query and returns every row.
    func rows(_ values: [Value] = []) throws(AirlockError) -> [Row] {
        try bind(values)
        var out: [Row] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw AirlockError("proposal store: \(database.errorMessage)") }
            var row = Row()
            for column in 0..<sqlite3_column_count(statement) {
                let name = String(cString: sqlite3_column_name(statement, column))
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.values[name] = .integer(sqlite3_column_int64(statement, column))
                case SQLITE_TEXT: row.values[name] = .text(String(cString: sqlite3_column_text(statement, column)))
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    let pointer = sqlite3_column_blob(statement, column)
                    row.values[name] = .blob(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: pointer, count: count)))
                default: row.values[name] = .null
                }
            }
            out.append(row)
        }
        return out
    }

    struct Row {
        var values: [String: Value] = [:]

        func text(_ name: String) -> String? {
            if case .text(let text)? = values[name] { return text }
            return nil
        }

        func integer(_ name: String) -> Int64? {
            if case .integer(let number)? = values[name] { return number }
            return nil
        }

        func blob(_ name: String) -> [UInt8]? {
            switch values[name] {
            case .blob(let bytes)?: return bytes
            case .text(let text)?: return Array(text.utf8)
            default: return nil
            }
        }
    }
}
