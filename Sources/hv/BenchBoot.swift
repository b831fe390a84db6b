import ArgumentParser

struct BenchBoot: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "boot", abstract: "Boot time and PIO exit cost, against QEMU and a minimal C KVM loop.")
    func run() throws {}
}
