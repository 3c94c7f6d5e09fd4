import Testing
@testable import LatheCore

/// Core data types and the op table.
@Suite struct CoreTests {
    @Test func broadcastFollowsNumpy() throws {
        #expect(try ShapeMath.broadcast([2, 1, 4], [3, 1]) == [2, 3, 4])
        #expect(try ShapeMath.broadcast([], [5]) == [5])
        #expect(try ShapeMath.broadcast([0, 1], [1, 3]) == [0, 3])
        #expect(throws: LatheError.self) { try ShapeMath.broadcast([2, 3], [4]) }
    }

    @Test func tensorStorageIs64ByteAlignedAndZeroed() throws {
        for shape in [[1], [3, 5], [0], [7, 1, 9]] {
            let t = try Tensor(.float32, shape: shape)
            #expect(Int(bitPattern: t.bytes) % 64 == 0)
            #expect((0..<t.count).allSatisfy { t.floats[$0] == 0 })
        }
        #expect(throws: LatheError.self) { try Tensor(.float32, shape: [-1, 2]) }
        #expect(throws: LatheError.self) { try Tensor(.float32, shape: [1 << 40, 1 << 30]) }
    }

    @Test func borrowedStorageReleasesExactlyOnce() throws {
        final class Counter: @unchecked Sendable { var n = 0 }
        let counter = Counter()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        defer { buffer.deallocate() }
        do {
            let t = try Tensor(.float32, shape: [4], storage: Storage(borrowing: buffer, byteCount: 16) { counter.n += 1 })
            let view = try t.reshaped([2, 2])
            #expect(view.shape == [2, 2])
        }
        #expect(counter.n == 1)
    }

    @Test func registryRefusesOverlapsAndFindsByOpset() throws {
        final class Dummy: Kernel {
            func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] { inputs }
            func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {}
        }
        let r = OpRegistry()
        try r.register(OpEntry(domain: "com.acme", opType: "Sobel", since: 1, until: 9) { _ in Dummy() })
        try r.register(OpEntry(domain: "com.acme", opType: "Sobel", since: 10) { _ in Dummy() })
        #expect(throws: LatheError.self) { try r.register(OpEntry(domain: "com.acme", opType: "Sobel", since: 5, until: 12) { _ in Dummy() }) }
        #expect(r.lookup(domain: "com.acme", opType: "Sobel", opset: 3)?.untilVersion == 9)
        #expect(r.lookup(domain: "com.acme", opType: "Sobel", opset: 12)?.sinceVersion == 10)
        #expect(r.lookup(domain: "com.other", opType: "Sobel", opset: 3) == nil)
        #expect(r.unregister(domain: "com.acme", opType: "Sobel") == 2)
        #expect(r.entries.isEmpty)
        try r.register(OpEntry(domain: "ai.onnx", opType: "Relu") { _ in Dummy() })
        #expect(r.lookup(domain: "", opType: "Relu", opset: 17) != nil)
    }

    @Test func attributesReportWrongTypes() throws {
        let a = Attributes(["axis": .int(1), "alpha": .float(0.5), "mode": .string("x")], owner: "Foo node 'f'")
        #expect(try a.int("axis", 0) == 1)
        #expect(try a.float("axis", 0) == 1)
        #expect(try a.int("missing", 7) == 7)
        do { _ = try a.int("alpha", 0); Issue.record("float read as int") } catch let e as LatheError {
            #expect(e.message == "Foo node 'f': attribute 'alpha' must be an int")
        }
    }

    @Test func modelRejectsDanglingValuesAndCycles() throws {
        final class Pass: Kernel {
            func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] { [inputs[0]] }
            func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {}
        }
        let r = OpRegistry()
        try r.register(OpEntry(opType: "P") { _ in Pass() })
        let x = ValueInfo(name: "x", dtype: .float32, dims: [.fixed(1)])
        let dangling = Graph(inputs: [x], outputs: [x], nodes: [Node(name: "n", opType: "P", inputs: ["ghost"], outputs: ["y"])])
        #expect(throws: LatheError.self) { try Model(graph: dangling, registry: r) }
        let cycle = Graph(inputs: [x], outputs: [ValueInfo(name: "b", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "n1", opType: "P", inputs: ["b"], outputs: ["a"]),
                                  Node(name: "n2", opType: "P", inputs: ["a"], outputs: ["b"])])
        do { _ = try Model(graph: cycle, registry: r); Issue.record("cycle accepted") } catch let e as LatheError {
            #expect(e.status == .parseError && e.message.contains("cycle"))
        }
    }
}
