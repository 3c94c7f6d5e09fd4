// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Lathe",
    products: [
        // MARK: - Public API
        /// `liblathe.so`: the C ABI declared in `include/lathe.h`.
        .library(name: "lathe", type: .dynamic, targets: ["LatheC"]),
        /// The Swift API.
        .library(name: "Lathe", targets: ["Lathe"]),
        /// The command-line tool: `lathe-cli inspect | ops | run | bench`.
        .executable(name: "lathe-cli", targets: ["lathe-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
    ],
    targets: [
        // MARK: - Public API
        /// The one public C header, `include/lathe.h`, as a header-only target so Swift can check the ABI.
        .target(name: "CLathe", path: "include", publicHeadersPath: "."),
        .target(name: "Lathe", dependencies: ["LatheCore", "LatheOps", "LatheONNX"]),
        .target(
            name: "LatheC",
            dependencies: ["Lathe", "LatheTrain", "CLathe", "CLatheShims"],
            linkerSettings: [.unsafeFlags([
                "-Xlinker", "--version-script=\(Context.packageDirectory)/lathe.map",
                "-Xlinker", "-soname=liblathe.so",
            ])]
        ),

        .executableTarget(
            name: "lathe-cli",
            // LatheC: `--plugin` loads libraries through lathe_load_plugin. The executable exports the
            // lathe_* functions (LatheC's version script limits the export to them), and the global
            // lookup scope comes first, so a plugin's calls bind to this process's op table even though
            // its `NEEDED liblathe.so` gets mapped (unused) beside it.
            dependencies: ["Lathe", "LatheC", "CLathe", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic"])]
        ),

        // MARK: - Implementation details
        .target(
            name: "CLatheShims",
            // DWARF 4: valgrind 3.19 cannot read the DWARF 5 string forms of more than one C unit.
            cSettings: [.unsafeFlags(["-gdwarf-4"])],
            linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("ffi"), .linkedLibrary("dl")]
        ),
        .target(name: "LatheCore", dependencies: ["CLatheShims"]),
        .target(name: "LatheOps", dependencies: ["LatheCore", "CLatheShims"]),
        .target(
            name: "LatheONNX",
            dependencies: ["LatheCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(name: "LatheTrain", dependencies: ["LatheCore", "LatheOps", "LatheONNX", "CLatheShims"]),

        // MARK: - Tests
        .testTarget(name: "LatheCoreTests", dependencies: ["LatheCore"]),
        .testTarget(name: "LatheOpsTests", dependencies: ["LatheOps", "LatheCore"]),
        .testTarget(name: "LatheTests", dependencies: ["Lathe"]),
        .testTarget(name: "LatheTrainTests", dependencies: ["LatheTrain", "LatheONNX", "LatheOps", "LatheCore"]),
    ]
)
