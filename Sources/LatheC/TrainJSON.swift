import Lathe

/// A parsed JSON value: the model specs and configs the training ABI reads.
enum JSON: Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses `text`; `.invalidArgument` naming the byte offset of the first problem.
    static func parse(_ text: String) throws -> JSON {
        var parser = JSONParser(bytes: Array(text.utf8))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.offset == parser.bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    /// The member `key` of an object (nil for other values or a missing key).
    subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The text of a JSON document for this value (non-finite numbers as `NaN`/`Infinity`, as Python reads them).
    var text: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        case .string(let s): return JSON.quote(s)
        case .array(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { JSON.quote($0) + ": " + members[$0]!.text }.joined(separator: ", ") + "}"
        }
    }

    /// `s` as a JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A recursive-descent reader of JSON text (RFC 8259; also `NaN`, `Infinity` as Python writes them).
private struct JSONParser {
    let bytes: [UInt8]
    var offset = 0
    /// Nesting depth, bounded so hostile input cannot exhaust the stack.
    private var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String) -> LatheError {
        LatheError.invalid("spec is not valid JSON: \(message) at byte \(offset)")
    }

    mutating func skipSpace() {
        while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
    }

    mutating func value() throws -> JSON {
        skipSpace()
        guard offset < bytes.count else { throw error("unexpected end") }
        switch bytes[offset] {
        case UInt8(ascii: "{"):
            return try nested { p in
                var members: [String: JSON] = [:]
                p.offset += 1
                p.skipSpace()
                if p.peek(UInt8(ascii: "}")) { p.offset += 1; return .object(members) }
                while true {
                    p.skipSpace()
                    guard p.peek(UInt8(ascii: "\"")) else { throw p.error("expected a member name") }
                    let key = try p.string()
                    p.skipSpace()
                    guard p.peek(UInt8(ascii: ":")) else { throw p.error("expected ':' after \(JSON.quote(key))") }
                    p.offset += 1
                    members[key] = try p.value()
                    p.skipSpace()
                    if p.peek(UInt8(ascii: ",")) { p.offset += 1; continue }
                    guard p.peek(UInt8(ascii: "}")) else { throw p.error("expected ',' or '}'") }
                    p.offset += 1
                    return .object(members)
                }
            }
        case UInt8(ascii: "["):
            return try nested { p in
                var items: [JSON] = []
                p.offset += 1
                p.skipSpace()
                if p.peek(UInt8(ascii: "]")) { p.offset += 1; return .array(items) }
                while true {
                    items.append(try p.value())
                    p.skipSpace()
                    if p.peek(UInt8(ascii: ",")) { p.offset += 1; continue }
                    guard p.peek(UInt8(ascii: "]")) else { throw p.error("expected ',' or ']'") }
                    p.offset += 1
                    return .array(items)
                }
            }
        case UInt8(ascii: "\""): return .string(try string())
        default:
            for (word, value) in [("true", JSON.bool(true)), ("false", .bool(false)), ("null", .null),
                                  ("NaN", .number(.nan)), ("Infinity", .number(.infinity)), ("-Infinity", .number(-.infinity))]
            where bytes[offset...].starts(with: word.utf8) {
                offset += word.utf8.count
                return value
            }
            return try number()
        }
    }

    private func peek(_ byte: UInt8) -> Bool { offset < bytes.count && bytes[offset] == byte }

    private mutating func nested(_ body: (inout JSONParser) throws -> JSON) throws -> JSON {
        guard depth < 64 else { throw error("nested more than 64 deep") }
        depth += 1
        defer { depth -= 1 }
        return try body(&self)
    }

    private mutating func number() throws -> JSON {
        let start = offset
        while offset < bytes.count, "+-0123456789.eE".utf8.contains(bytes[offset]) { offset += 1 }
        guard offset > start, let d = Double(String(decoding: bytes[start..<offset], as: UTF8.self)) else {
            offset = start
            throw error("unexpected character")
        }
        return .number(d)
    }

    private mutating func string() throws -> String {
        offset += 1
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush() { scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars); run.removeAll() }
        while offset < bytes.count {
            let b = bytes[offset]
            offset += 1
            if b == UInt8(ascii: "\"") { flush(); return String(scalars) }
            guard b == UInt8(ascii: "\\") else { run.append(b); continue }
            flush()
            guard offset < bytes.count else { break }
            let e = bytes[offset]
            offset += 1
            switch e {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{8}")
            case UInt8(ascii: "f"): scalars.append("\u{C}")
            case UInt8(ascii: "u"):
                guard offset + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16) else {
                    throw error("bad \\u escape")
                }
                offset += 4
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(e))
            }
        }
        throw error("unterminated string")
    }
}
