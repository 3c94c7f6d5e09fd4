import Foundation
import Testing
@testable import LatheOps
import LatheCore

private typealias H = ShapeOpsHarness

/// Softmax and LogSoftmax against a naive float64 reference.
/// Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct SoftmaxTests {
    /// Naive reference: normalises over the elements that share every index outside the reduced dims.
    /// Before opset 13 the reduced dims are `axis...` (2-D coercion); from opset 13 only `axis`.
    static func reference(_ x: [Double], shape: [Int], axis: Int, opset: Int, log: Bool) -> [Double] {
        let rank = shape.count
        let a = axis < 0 ? axis + rank : axis
        let reduced = opset < 13 ? Set(a..<rank) : [a]
        func key(_ i: Int) -> [Int] {
            let index = H.unravel(i, shape)
            return (0..<rank).map { reduced.contains($0) ? 0 : index[$0] }
        }
        var groups: [[Int]: [Int]] = [:]
        for i in 0..<x.count { groups[key(i), default: []].append(i) }
        var y = [Double](repeating: 0, count: x.count)
        for members in groups.values {
            let m = members.map { x[$0] }.max()!
            let sum = members.map { Foundation.exp(x[$0] - m) }.reduce(0, +)
            for i in members { y[i] = log ? x[i] - m - Foundation.log(sum) : Foundation.exp(x[i] - m) / sum }
        }
        return y
    }

    /// Checks the tolerance and returns the max difference (for messages).
    static func expectClose(_ got: [Double], _ ref: [Double], _ what: String) {
        let scale = max(1, ref.map(abs).max() ?? 0)
        let diff = zip(got, ref).map { abs($0 - $1) }.max() ?? 0
        #expect(got.count == ref.count && diff <= 1e-4 * scale, "\(what): max|diff| = \(diff)")
    }

    @Test(arguments: ["Softmax", "LogSoftmax"])
    func matchesReferenceAcrossOpsetsAndAxes(op: String) throws {
        var rng = SeededRNG(20)
        for _ in 0..<40 {
            let rank = rng.int(1...4)
            let shape = rng.shape(rank: rank, dims: 1...5)
            let opset = rng.pick([11, 12, 13, 21])
            let axis: Int? = rng.int(0...3) == 0 ? nil : rng.int(-rank...(rank - 1))
            if axis == nil && opset < 13 && rank < 2 { continue }
            let x = try rng.floats(shape, scale: 10)
            let y = try H.run1(op, opset: opset, [.feed(x)], attributes: axis.map { ["axis": .int($0)] } ?? [:])
            let ref = Self.reference(x.floatArray().map(Double.init), shape: shape, axis: axis ?? (opset < 13 ? 1 : -1),
                                     opset: opset, log: op == "LogSoftmax")
            #expect(y.shape == shape)
            Self.expectClose(y.floatArray().map(Double.init), ref, "\(op) opset \(opset) shape \(shape) axis \(String(describing: axis))")
        }
    }

    @Test func float64AndLargeInputsAreStable() throws {
        var rng = SeededRNG(21)
        let shape = [3, 7]
        for op in ["Softmax", "LogSoftmax"] {
            let values = (0..<21).map { _ in Double(rng.float(5)) + 1000 }
            let x = try Tensor(.float64, shape: shape)
            for (i, v) in values.enumerated() { x.bytes.storeBytes(of: v, toByteOffset: 8 * i, as: Double.self) }
            let y = try H.run1(op, opset: 13, [.feed(x)])
            #expect(y.dtype == .float64)
            let got = (0..<21).map { y.bytes.load(fromByteOffset: 8 * $0, as: Double.self) }
            Self.expectClose(got, Self.reference(values, shape: shape, axis: -1, opset: 13, log: op == "LogSoftmax"), op)

            let big = try Tensor(shape: shape, floats: values.map(Float.init))
            let yf = try H.run1(op, opset: 13, [.feed(big)]).floatArray().map(Double.init)
            #expect(yf.allSatisfy { $0.isFinite })
            Self.expectClose(yf, Self.reference(values.map { Double(Float($0)) }, shape: shape, axis: -1, opset: 13, log: op == "LogSoftmax"), op)
        }
    }

    @Test func legacyCoercionDiffersFromSingleAxis() throws {
        let x = try Tensor(shape: [1, 2, 2], floats: [0, 1, 2, 3])
        let legacy = try H.run1("Softmax", opset: 11, [.feed(x)], attributes: ["axis": .int(1)]).floatArray()
        let modern = try H.run1("Softmax", opset: 13, [.feed(x)], attributes: ["axis": .int(1)]).floatArray()
        #expect(abs(legacy.reduce(0, +) - 1) <= 1e-4)
        #expect(abs(modern.reduce(0, +) - 2) <= 1e-4)
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        #expect(H.error { _ = try H.run1("Softmax", [.feed(x)], attributes: ["axis": .int(2)]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("LogSoftmax", [.feed(x)], attributes: ["axis": .int(-3)]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Softmax", [.feed(try Tensor(shape: [2], int64s: [1, 2]))]) }?.status == .dtypeMismatch)
        #expect(H.error { _ = try H.run1("Softmax", [.feed(try Tensor(shape: [], floats: [1]))]) }?.status == .shapeMismatch)
        #expect(H.error { _ = try H.run1("Softmax", [.feed(x), .feed(x)]) }?.status == .invalidArgument)
    }
}
