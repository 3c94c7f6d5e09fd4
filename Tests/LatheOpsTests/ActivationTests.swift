#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore

/// Relu, LeakyRelu, Sigmoid, Tanh, Clip against their textbook formulas.
@Suite struct ActivationTests {
    let x: [Float] = { var r = SeededRNG(3); return r.floats(60, -30...30) + [0, -0.0, 1e-3, -1e-3] }()

    @Test func formulas() throws {
        let t = try Tensor(shape: [x.count], floats: x)
        expectClose(try runNode("Relu", inputs: [t])[0], x.map { max($0, 0) }, shape: [x.count])
        expectClose(try runNode("LeakyRelu", inputs: [t], attributes: ["alpha": .float(0.2)])[0],
                    x.map { $0 < 0 ? 0.2 * $0 : $0 }, shape: [x.count])
        expectClose(try runNode("LeakyRelu", inputs: [t])[0], x.map { $0 < 0 ? 0.01 * $0 : $0 }, shape: [x.count])
        expectClose(try runNode("Sigmoid", inputs: [t])[0], x.map { Float(1 / (1 + exp(-Double($0)))) }, shape: [x.count])
        expectClose(try runNode("Tanh", inputs: [t])[0], x.map { Float(tanh(Double($0))) }, shape: [x.count])
    }

    @Test func clipFromInputsAndFromAttributes() throws {
        let t = try Tensor(shape: [x.count], floats: x)
        let lo = try Tensor(shape: [], floats: [-2]), hi = try Tensor(shape: [], floats: [5])
        expectClose(try runNode("Clip", inputs: [t, lo, hi])[0], x.map { min(max($0, -2), 5) }, shape: [x.count])
        expectClose(try runNode("Clip", inputs: [t, nil, hi])[0], x.map { min($0, 5) }, shape: [x.count])
        expectClose(try runNode("Clip", inputs: [t, lo])[0], x.map { max($0, -2) }, shape: [x.count])
        expectClose(try runNode("Clip", inputs: [t], opset: 6, attributes: ["min": .float(-1), "max": .float(1)])[0],
                    x.map { min(max($0, -1), 1) }, shape: [x.count])
        #expect(throws: LatheError.self) { try runNode("Clip", inputs: [t, Tensor(shape: [2], floats: [0, 1])]) }
    }

    @Test func nonFloatInputIsADtypeError() throws {
        do { _ = try runNode("Relu", inputs: [Tensor(shape: [1], int64s: [1])]); Issue.record("accepted int64") } catch let e as LatheError {
            #expect(e.status == .dtypeMismatch)
        }
    }
}
