/// The kind of a failure; the raw values are the C ABI's `LATHE_*` status codes.
public enum Status: Int32, Sendable {
    case ok = 0
    case invalidArgument = 1
    case parseError = 2
    case unsupportedOp = 3
    case shapeMismatch = 4
    case dtypeMismatch = 5
    case outOfMemory = 6
    case pluginFailure = 7
    case io = 8
    case invalidState = 9
    case `internal` = 10
}

/// Every error Lathe throws: a status for programs, a message for people.
public struct LatheError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public let status: Status
    /// A human-readable message naming the problem.
    public let message: String

    /// Creates an error of the given kind.
    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }

    /// Shorthand for `LatheError(.invalidArgument, message)`.
    public static func invalid(_ message: String) -> LatheError { LatheError(.invalidArgument, message) }
    /// Shorthand for `LatheError(.shapeMismatch, message)`.
    public static func shape(_ message: String) -> LatheError { LatheError(.shapeMismatch, message) }
    /// Shorthand for `LatheError(.dtypeMismatch, message)`.
    public static func dtype(_ message: String) -> LatheError { LatheError(.dtypeMismatch, message) }
}
