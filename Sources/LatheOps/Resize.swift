#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Resize (opsets 10–19) and Upsample (opsets 7–9), float32, as separable per-axis resampling:
/// each resized axis gets a table of input taps and weights per output index, applied one axis at a time
/// (as the ONNX reference does), which covers nearest, N-d linear and cubic, antialiasing and cropping.
enum ResizeOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Resize", since: 10) { try ResizeKernel($0) }
        try registry.add("Upsample", since: 7, until: 9) { try ResizeKernel(upsample: $0) }
    }
}

/// How an output index maps back to an input coordinate (`coordinate_transformation_mode`).
enum ResizeCoordinates: String, Sendable {
    case halfPixel = "half_pixel"
    case halfPixelSymmetric = "half_pixel_symmetric"
    case pytorchHalfPixel = "pytorch_half_pixel"
    case alignCorners = "align_corners"
    case asymmetric
    case tfCropAndResize = "tf_crop_and_resize"
}

/// The interpolation `mode`.
enum ResizeMode: String, Sendable {
    case nearest, linear, cubic
}

/// How nearest mode rounds a coordinate (`nearest_mode`); `simple` is the opset-10/Upsample rule
/// (floor when upsampling, ceil when downsampling).
enum NearestRounding: String, Sendable {
    case roundPreferFloor = "round_prefer_floor"
    case roundPreferCeil = "round_prefer_ceil"
    case floor, ceil, simple
}

/// Input taps and weights of every output index along one axis.
struct ResampleTable {
    /// Taps per output index.
    let taps: Int
    /// `indices[j·taps + t]`: input index (clamped into range) of tap `t` of output `j`.
    let indices: [Int]
    /// `weights[j·taps + t]`: its weight.
    let weights: [Float]
    /// Output indices whose coordinate falls outside the input (tf_crop_and_resize): they take the
    /// extrapolation value.
    let extrapolated: [Bool]
}

/// The attributes of a Resize or Upsample node, validated at model load.
struct ResizeSettings: Sendable {
    let mode: ResizeMode
    let coordinates: ResizeCoordinates
    let rounding: NearestRounding
    /// `cubic_coeff_a`.
    let cubicA: Double
    /// `exclude_outside`: weights of taps outside the input are zeroed and the rest renormalised.
    let excludeOutside: Bool
    /// `extrapolation_value` (tf_crop_and_resize).
    let extrapolationValue: Float
    /// `antialias`: when downsampling, linear and cubic filters are widened by 1/scale.
    let antialias: Bool

    /// The input coordinate of output index `y` along an axis, and whether it lies outside the input
    /// (tf_crop_and_resize only).
    func sourceCoordinate(_ y: Int, scale: Double, inputSize: Int, outputSize: Int,
                          roi: (Double, Double)) -> (Double, Bool) {
        let y = Double(y), input = Double(inputSize), outputWidth = scale * input
        switch coordinates {
        case .alignCorners:
            return (outputWidth == 1 ? 0 : y * (input - 1) / (outputWidth - 1), false)
        case .asymmetric:
            return (y / scale, false)
        case .tfCropAndResize:
            var x = outputWidth == 1 ? (roi.1 - roi.0) * (input - 1) / 2 : y * (roi.1 - roi.0) * (input - 1) / (outputWidth - 1)
            x += roi.0 * (input - 1)
            return (x, x < 0 || x > input - 1)
        case .pytorchHalfPixel:
            return (outputWidth == 1 ? -0.5 : (y + 0.5) / scale - 0.5, false)
        case .halfPixel:
            return ((y + 0.5) / scale - 0.5, false)
        case .halfPixelSymmetric:
            let adjustment = Double(outputSize) / outputWidth
            let offset = input / 2 * (1 - adjustment)
            return (offset + (y + 0.5) / scale - 0.5, false)
        }
    }

    /// Filter coefficients for a coordinate whose distance past its left neighbour is `ratio` (in (0, 1]).
    func coefficients(_ ratio: Double, scale: Double, downsampling: Bool) -> [Double] {
        switch mode {
        case .nearest:
            let right: Bool
            if ratio == 1 { right = true } else {
                switch rounding {
                case .roundPreferFloor: right = ratio > 0.5
                case .roundPreferCeil: right = ratio >= 0.5
                case .floor: right = false
                case .ceil: right = true
                case .simple: right = downsampling
                }
            }
            return right ? [0, 1] : [1, 0]
        case .linear:
            guard antialias else { return [1 - ratio, ratio] }
            let s = min(scale, 1)
            let start = Int((-1 / s).rounded(.down)) + 1
            let raw = (start..<(2 - start)).map { max(0, min(1, 1 - abs((Double($0) - ratio) * s))) }
            let sum = raw.reduce(0, +)
            return raw.map { $0 / sum }
        case .cubic:
            let a = cubicA
            if !antialias {
                let r1 = ratio + 1, q = 1 - ratio, q1 = q + 1
                return [((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                        ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
                        ((a + 2) * q - (a + 3)) * q * q + 1,
                        ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a]
            }
            let s = min(scale, 1)
            let start = Int((-2 / s).rounded(.down)) + 1
            let raw = (start..<(2 - start)).map { i -> Double in
                let x = abs(s * (Double(i) - ratio)), x2 = x * x, x3 = x2 * x
                if x <= 1 { return (a + 2) * x3 - (a + 3) * x2 + 1 }
                if x < 2 { return a * x3 - 5 * a * x2 + 8 * a * x - 4 * a }
                return 0
            }
            let sum = raw.reduce(0, +)
            return raw.map { $0 / sum }
        }
    }

    /// The tap table of one axis resized from `inputSize` to `outputSize` with `scale`.
    func table(inputSize: Int, outputSize: Int, scale: Double, roi: (Double, Double)) -> ResampleTable {
        var indices: [Int] = [], weights: [Float] = [], extrapolated: [Bool] = []
        var taps = 0
        for j in 0..<outputSize {
            let (x, outside) = sourceCoordinate(j, scale: scale, inputSize: inputSize, outputSize: outputSize, roi: roi)
            let floorX = x.rounded(.down)
            let ratio = x == floorX ? 1 : x - floorX
            var coefficients = self.coefficients(ratio, scale: scale, downsampling: scale < 1)
            let n = coefficients.count
            taps = n
            // The n input indices nearest to x, ties towards the smaller index (the reference's rule).
            let pad = (n + 1) / 2
            let padded = x + Double(pad)
            let p = Int(padded.rounded(.down)), fraction = padded - Double(p)
            let offset = n % 2 == 0 ? (fraction == 0 ? -(n / 2) : -(n / 2) + 1)
                                    : (fraction <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1)
            let first = p + offset - pad
            if excludeOutside {
                for t in 0..<n where first + t < 0 || first + t >= inputSize { coefficients[t] = 0 }
                let sum = coefficients.reduce(0, +)
                if sum != 0 { coefficients = coefficients.map { $0 / sum } }
            }
            for t in 0..<n {
                indices.append(min(max(first + t, 0), max(inputSize - 1, 0)))
                weights.append(Float(coefficients[t]))
            }
            extrapolated.append(outside)
        }
        return ResampleTable(taps: taps, indices: indices, weights: weights, extrapolated: extrapolated)
    }
}

/// Resizes one axis of a row-major block: `outer × inputSize × inner` → `outer × outputSize × inner`.
func resample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, inputSize: Int, inner: Int,
              table: ResampleTable, extrapolationValue: Float, nearest: Bool) {
    let outputSize = table.extrapolated.count, taps = table.taps
    table.indices.withUnsafeBufferPointer { indices in
        table.weights.withUnsafeBufferPointer { weights in
            for o in 0..<outer {
                let src = x + o * inputSize * inner
                for j in 0..<outputSize {
                    let dst = y + (o * outputSize + j) * inner
                    if table.extrapolated[j] {
                        dst.update(repeating: extrapolationValue, count: inner)
                        continue
                    }
                    if nearest {
                        // Exactly one tap carries weight 1: copy it (no arithmetic on the values).
                        var chosen = indices[j * taps]
                        for t in 0..<taps where weights[j * taps + t] != 0 { chosen = indices[j * taps + t] }
                        dst.update(from: src + chosen * inner, count: inner)
                        continue
                    }
                    if inner == 1 {
                        var sum: Float = 0
                        for t in 0..<taps { sum += weights[j * taps + t] * src[indices[j * taps + t]] }
                        dst[0] = sum
                    } else {
                        dst.update(repeating: 0, count: inner)
                        for t in 0..<taps {
                            let w = weights[j * taps + t], row = src + indices[j * taps + t] * inner
                            for i in 0..<inner { dst[i] += w * row[i] }
                        }
                    }
                }
            }
        }
    }
}

/// Resize and Upsample. Output sizes come from `scales` or `sizes`, which must be known when the plan is
/// built (initializers, folded values, or graph inputs, to whose values the plan is then specialised).
final class ResizeKernel: Kernel {
    let settings: ResizeSettings
    /// `axes` (opset 18+): the axes that `scales`, `sizes` and `roi` refer to; all axes otherwise.
    let axes: [Int]?
    /// `keep_aspect_ratio_policy` (opset 18+): `stretch`, `not_larger` or `not_smaller`.
    let aspectPolicy: String
    /// Upsample opset 7: the `scales` attribute.
    let attributeScales: [Float]?
    /// Input slots of roi, scales and sizes (nil when the op version has no such input).
    let roiSlot: Int?, scalesSlot: Int?, sizesSlot: Int?
    /// "Resize node 'r'", for messages.
    let label: String

    var valueDependentInputs: Set<Int> { Set([scalesSlot, sizesSlot].compactMap { $0 }) }

    /// Resize, opsets 10–19.
    init(_ c: NodeContext) throws {
        let a = c.attributes
        label = c.label
        let modeName = try a.string("mode", "nearest")
        guard let mode = ResizeMode(rawValue: modeName), c.opset >= 11 || mode != .cubic else {
            throw LatheError.invalid("\(c.label): mode must be nearest, linear\(c.opset >= 11 ? " or cubic" : ""), got '\(modeName)'")
        }
        if c.opset == 10 {
            try c.expectInputs(2...2)
            settings = ResizeSettings(mode: mode, coordinates: .asymmetric, rounding: .simple, cubicA: -0.75,
                                      excludeOutside: false, extrapolationValue: 0, antialias: false)
            roiSlot = nil; scalesSlot = 1; sizesSlot = nil
            axes = nil; aspectPolicy = "stretch"; attributeScales = nil
            return
        }
        try c.expectInputs((c.opset >= 13 ? 1 : 3)...4)
        let coordinateName = try a.string("coordinate_transformation_mode", "half_pixel")
        guard let coordinates = ResizeCoordinates(rawValue: coordinateName) else {
            throw LatheError.invalid("\(c.label): unknown coordinate_transformation_mode '\(coordinateName)'")
        }
        let roundingName = try a.string("nearest_mode", "round_prefer_floor")
        guard let rounding = NearestRounding(rawValue: roundingName), rounding != .simple else {
            throw LatheError.invalid("\(c.label): nearest_mode must be round_prefer_floor, round_prefer_ceil, floor or ceil, got '\(roundingName)'")
        }
        let antialias = try a.int("antialias", 0) != 0
        settings = ResizeSettings(mode: mode, coordinates: coordinates, rounding: rounding,
                                  cubicA: Double(try a.float("cubic_coeff_a", -0.75)),
                                  excludeOutside: try a.int("exclude_outside", 0) != 0,
                                  extrapolationValue: try a.float("extrapolation_value", 0),
                                  antialias: antialias && mode != .nearest)
        axes = try a.ints("axes")
        aspectPolicy = try a.string("keep_aspect_ratio_policy", "stretch")
        guard ["stretch", "not_larger", "not_smaller"].contains(aspectPolicy) else {
            throw LatheError.invalid("\(c.label): keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '\(aspectPolicy)'")
        }
        attributeScales = nil
        roiSlot = 1; scalesSlot = 2; sizesSlot = 3
    }

    /// Upsample, opsets 7–9: nearest or linear with asymmetric coordinates; scales as attribute (7) or input (9).
    init(upsample c: NodeContext) throws {
        label = c.label
        let modeName = try c.attributes.string("mode", "nearest")
        guard let mode = ResizeMode(rawValue: modeName), mode != .cubic else {
            throw LatheError.invalid("\(c.label): mode must be nearest or linear, got '\(modeName)'")
        }
        settings = ResizeSettings(mode: mode, coordinates: .asymmetric, rounding: .simple, cubicA: -0.75,
                                  excludeOutside: false, extrapolationValue: 0, antialias: false)
        axes = nil; aspectPolicy = "stretch"; roiSlot = nil; sizesSlot = nil
        if c.opset >= 9 {
            try c.expectInputs(2...2)
            scalesSlot = 1; attributeScales = nil
        } else {
            try c.expectInputs(1...1)
            guard let scales = try c.attributes.floats("scales") else {
                throw LatheError.invalid("\(c.label): attribute 'scales' is required")
            }
            scalesSlot = nil; attributeScales = scales
        }
    }

    /// Output shape and per-axis scale from the input shape and the scales or sizes values.
    func geometry(_ shape: [Int], scales scaleTensor: Tensor?, sizes sizeTensor: Tensor?) throws -> (output: [Int], scales: [Double], axes: [Int]) {
        let rank = shape.count
        let resized = try (axes ?? Array(0..<rank)).map { try ShapeMath.axis($0, rank: rank, op: label) }
        guard Set(resized).count == resized.count else { throw LatheError.invalid("\(label): axes \(axes!) repeat an axis") }
        var scales: [Float]? = attributeScales
        if let t = scaleTensor, t.count > 0 {
            guard t.dtype == .float32 else { throw LatheError.dtype("scales must be float32, got \(t.dtype)") }
            scales = t.floatArray()
        }
        let sizes = sizeTensor.flatMap { $0.count > 0 ? $0.intArray() : nil }
        var output = shape, factors = [Double](repeating: 1, count: rank)
        if let sizes {
            guard scales == nil else { throw LatheError.invalid("\(label): only one of scales and sizes may be given") }
            guard sizes.count == resized.count else {
                throw LatheError.shape("sizes has \(sizes.count) values for \(resized.count) resized axes of input \(shape)")
            }
            guard sizes.allSatisfy({ $0 >= 0 }) else { throw LatheError.invalid("\(label): sizes must be non-negative, got \(sizes)") }
            for (i, a) in resized.enumerated() { factors[a] = Double(sizes[i]) / Double(shape[a]) }
            if aspectPolicy != "stretch" {
                let chosen = resized.map { factors[$0] }
                let scale = aspectPolicy == "not_larger" ? chosen.min() ?? 1 : chosen.max() ?? 1
                for a in resized {
                    factors[a] = scale
                    output[a] = Int(scale * Double(shape[a]) + 0.5)
                }
            } else {
                for (i, a) in resized.enumerated() { output[a] = sizes[i] }
            }
        } else if let scales {
            guard scales.count == resized.count else {
                throw LatheError.shape("scales has \(scales.count) values for \(resized.count) resized axes of input \(shape)")
            }
            guard scales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw LatheError.invalid("\(label): scales must be positive, got \(scales)")
            }
            for (i, a) in resized.enumerated() {
                factors[a] = Double(scales[i])
                // Multiplied in float32, as onnxruntime does (1.4 × 5 gives 7, not 6).
                let size = Double((scales[i] * Float(shape[a])).rounded(.down))
                guard size < Double(Int32.max) else { throw LatheError(.outOfMemory, "\(label): output size \(size) on axis \(a) is too large") }
                output[a] = Int(size)
            }
        } else {
            throw LatheError.invalid("\(label): needs scales or sizes, given as values known when the plan is built")
        }
        return (output, factors, resized)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        func constant(_ slot: Int?) throws -> Tensor? {
            guard let slot, slot < inputs.count, inputs[slot] != nil else { return nil }
            guard let value = constants[slot] else {
                throw LatheError.invalid("\(label): input \(slot == sizesSlot ? "sizes" : "scales") must be known when the plan is built (an initializer, a constant expression or a graph input)")
            }
            return value
        }
        if let roiSlot, roiSlot < inputs.count, let roi = inputs[roiSlot], roi.count > 0 {
            _ = try require(roi, "roi", .float32)
        }
        let g = try geometry(x.shape, scales: try constant(scalesSlot), sizes: try constant(sizesSlot))
        guard boundedProduct(g.output, limit: 1 << 40) != nil else {
            throw LatheError(.outOfMemory, "\(label): output shape \(g.output) is too large")
        }
        return [TensorType(.float32, g.output)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        func input(_ slot: Int?) -> Tensor? { slot.flatMap { $0 < inputs.count ? inputs[$0] : nil } }
        let x = inputs[0]!, y = outputs[0]!
        let g = try geometry(x.shape, scales: input(scalesSlot), sizes: input(sizesSlot))
        let rank = x.rank
        var roi = [(Double, Double)](repeating: (0, 1), count: rank)
        if settings.coordinates == .tfCropAndResize, let t = input(roiSlot), t.count > 0 {
            guard t.dtype == .float32, t.count == 2 * g.axes.count else {
                throw LatheError.shape("roi must hold \(2 * g.axes.count) float32 values (starts then ends of the resized axes), got \(t.type)")
            }
            for (i, a) in g.axes.enumerated() { roi[a] = (Double(t.floats[i]), Double(t.floats[g.axes.count + i])) }
        }
        var current = x, shape = x.shape
        for a in g.axes {
            let identity = abs(g.scales[a] - 1) < 1e-9 && g.output[a] == shape[a] && roi[a] == (0, 1)
            if identity { continue }
            var next = shape
            next[a] = g.output[a]
            let target = try Tensor(.float32, shape: next)
            let table = settings.table(inputSize: shape[a], outputSize: g.output[a], scale: g.scales[a], roi: roi[a])
            if shape[a] > 0 || g.output[a] == 0 {
                resample(current.floats, target.floats, outer: shape[..<a].reduce(1, *), inputSize: shape[a],
                         inner: shape[(a + 1)...].reduce(1, *), table: table,
                         extrapolationValue: settings.extrapolationValue, nearest: settings.mode == .nearest)
            }
            current = target
            shape = next
        }
        y.floats.update(from: current.floats, count: y.count)
    }
}
