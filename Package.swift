// swift-tools-version:6.0
import PackageDescription

// Imports flow one way: hv → Devices → Partition → KVM → CKVM (design.md §4).
let package = Package(
    name: "hv",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hv", targets: ["hv"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CKVM", path: "CKVM"),
        .target(name: "KVM", dependencies: ["CKVM"]),
        .target(name: "Partition", dependencies: [
            "KVM",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Devices", dependencies: [
            "Partition",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "VMBus"),
        .executableTarget(name: "hv", dependencies: [
            "KVM", "Partition", "Devices",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Builders for synthetic kernel images and paths to the built artifacts, shared by the tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "CKVM"]),
        .testTarget(name: "PartitionTests", dependencies: ["Partition", "KVM", "TestSupport"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "Partition"]),
        .testTarget(name: "VMBusTests", dependencies: ["VMBus"]),
        .testTarget(name: "IntegrationTests", dependencies: ["KVM", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
