#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LatheCore
import SwiftProtobuf

/// Writes Lathe's `Graph` as an ONNX model (`ModelProto` bytes), e.g. a model trained with LatheTrain.
public enum ONNXExporter {
    /// The graph for inference: every Dropout whose mask is unused is removed (its readers read its
    /// input instead; one that produces a graph output becomes an Identity), and initializers no node
    /// reads any more (Dropout ratios) are dropped.
    public static func inferenceGraph(_ graph: Graph) -> Graph {
        var g = graph
        var rename: [String: String] = [:]
        let outputs = Set(graph.outputs.map(\.name))
        var used = Set<String>()
        for node in graph.nodes { for input in node.inputs { used.insert(input) } }
        g.nodes = []
        for var node in graph.nodes {
            node.inputs = node.inputs.map { rename[$0] ?? $0 }
            let maskUsed = node.outputs.count > 1 && !node.outputs[1].isEmpty
                && (used.contains(node.outputs[1]) || outputs.contains(node.outputs[1]))
            if node.opType == "Dropout" && node.domain.isEmpty && !maskUsed {
                if outputs.contains(node.outputs[0]) {
                    g.nodes.append(Node(name: node.name, opType: "Identity", inputs: [node.inputs[0]], outputs: [node.outputs[0]]))
                } else {
                    rename[node.outputs[0]] = node.inputs[0]
                }
                continue
            }
            g.nodes.append(node)
        }
        var read = Set(g.nodes.flatMap(\.inputs))
        read.formUnion(outputs)
        g.initializers = g.initializers.filter { read.contains($0.key) }
        return g
    }

    /// Serializes `graph` (after `inferenceGraph` when `forInference`) as ONNX model bytes.
    /// - Throws: `.invalidArgument` for an attribute or tensor ONNX cannot hold; serialization errors as `.internal`.
    public static func modelBytes(_ graph: Graph, forInference: Bool = true, producer: String = "lathe") throws -> [UInt8] {
        let g = forInference ? inferenceGraph(graph) : graph
        var model = Onnx_ModelProto()
        model.irVersion = irVersion(forOpsets: g.opsets)
        model.producerName = producer
        model.opsetImport = g.opsets.keys.sorted().map { domain in
            var o = Onnx_OperatorSetIdProto()
            o.domain = domain
            o.version = Int64(g.opsets[domain]!)
            return o
        }
        var proto = Onnx_GraphProto()
        proto.name = g.name.isEmpty ? "lathe" : g.name
        proto.input = g.inputs.map(valueInfo)
        proto.output = g.outputs.map(valueInfo)
        proto.initializer = try g.initializers.keys.sorted().map { try tensor(g.initializers[$0]!, name: $0) }
        proto.node = try g.nodes.map { n in
            var node = Onnx_NodeProto()
            node.name = n.name
            node.opType = n.opType
            node.domain = n.domain
            node.input = n.inputs
            node.output = n.outputs
            node.attribute = try n.attributes.values.keys.sorted().map { try attribute($0, n.attributes.values[$0]!) }
            return node
        }
        model.graph = proto
        do { return try model.serializedBytes() } catch {
            throw LatheError(.internal, "cannot serialize the ONNX model: \(error)")
        }
    }

    /// The lowest ONNX IR version that can carry every imported opset (onnx's `VERSION_TABLE`), and
    /// at least 4, the first version that lets initializers stay out of the graph inputs.
    static func irVersion(forOpsets opsets: [String: Int]) -> Int64 {
        let defaultDomain: Int64 = switch opsets[""] ?? 1 {
        case ...8: 4
        case 9: 4
        case 10: 5
        case 11: 6
        case 12...14: 7
        case 15...18: 8
        case 19...20: 9
        case 21...22: 10
        case 23: 11
        case 24: 12
        default: 13
        }
        let ml: Int64 = switch opsets["ai.onnx.ml"] ?? 1 {
        case ...1: 4
        case 2: 6
        case 3: 8
        case 4: 9
        default: 10
        }
        return max(defaultDomain, ml)
    }

    /// Writes `bytes` to the file at `path`, replacing it.
    /// - Throws: `.io` naming the path and the system's reason when it cannot be opened or written.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        guard let file = fopen(path, "wb") else {
            throw LatheError(.io, "cannot open '\(path)' for writing: \(String(cString: strerror(errno)))")
        }
        let written = fwrite(bytes, 1, bytes.count, file)
        let closed = fclose(file)
        guard written == bytes.count, closed == 0 else {
            throw LatheError(.io, "cannot write \(bytes.count) bytes to '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    static func valueInfo(_ v: ValueInfo) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = v.name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = v.dtype.rawValue
        if let dims = v.dims {
            var shape = Onnx_TensorShapeProto()
            shape.dim = dims.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case .fixed(let n): dim.dimValue = Int64(n)
                case .symbolic(let s): if !s.isEmpty { dim.dimParam = s }
                }
                return dim
            }
            t.shape = shape
        }
        info.type.tensorType = t
        return info
    }

    /// A `TensorProto` holding `t`'s elements as raw little-endian bytes.
    static func tensor(_ t: Tensor, name: String) throws -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = t.dtype.rawValue
        proto.dims = t.shape.map { Int64($0) }
        proto.rawData = Data(UnsafeRawBufferPointer(start: t.bytes, count: t.byteCount))
        return proto
    }

    static func attribute(_ name: String, _ value: AttributeValue) throws -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case .int(let i): a.type = .int; a.i = Int64(i)
        case .float(let f): a.type = .float; a.f = f
        case .string(let s): a.type = .string; a.s = Data(s.utf8)
        case .ints(let v): a.type = .ints; a.ints = v.map { Int64($0) }
        case .floats(let v): a.type = .floats; a.floats = v
        case .strings(let v): a.type = .strings; a.strings = v.map { Data($0.utf8) }
        case .tensor(let t): a.type = .tensor; a.t = try tensor(t, name: "")
        }
        return a
    }
}
