import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure hv: print a table and write JSON.",
        subcommands: [BenchBoot.self, BenchVMBus.self, BenchNet.self])
}
