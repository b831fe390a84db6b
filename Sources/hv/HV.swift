import ArgumentParser

@main
struct HV: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hv",
        abstract: "A virtual machine monitor for Linux KVM, built the way Hyper-V is built.",
        subcommands: [Run.self, Stop.self, Caps.self, Bench.self]
    )
}
