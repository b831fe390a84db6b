// swift-tools-version:6.0
import PackageDescription

// Imports flow one way: hv → VSP/Devices → VMBus/NetworkBackends → Partition → KVM → CKVM (design.md §4).
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
        .systemLibrary(name: "CPcap", path: "CPcap"),
        .target(name: "KVM", dependencies: ["CKVM"]),
        .target(name: "Partition", dependencies: [
            "KVM",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "NetworkBackends", dependencies: [
            "CPcap", "Partition",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Devices", dependencies: [
            "Partition", "NetworkBackends",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "VMBus", dependencies: [
            "Partition", "KVM",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "VSP", dependencies: [
            "VMBus", "NetworkBackends",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "hv", dependencies: [
            "KVM", "Partition", "Devices", "VMBus", "VSP", "NetworkBackends", "CPcap",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Builders for synthetic kernel images and paths to the built artifacts, shared by the tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "CKVM"]),
        .testTarget(name: "PartitionTests", dependencies: ["Partition", "KVM", "TestSupport"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "Partition", "NetworkBackends", "TestSupport"]),
        .testTarget(name: "NetworkBackendsTests", dependencies: ["NetworkBackends", "TestSupport"]),
        .testTarget(name: "VMBusTests", dependencies: ["VMBus", "Partition", "KVM", "TestSupport"]),
        .testTarget(name: "VSPTests", dependencies: ["VSP", "VMBus", "Partition", "KVM", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["KVM", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
