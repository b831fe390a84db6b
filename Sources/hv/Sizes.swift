/// Parses a memory size: a number with an optional K, M, G or T suffix (binary units; "MiB",
/// "MB" and "M" all mean 2^20). A bare number means MiB, as in QEMU's -m.
func parseMemorySize(_ text: String) -> UInt64? {
    let trimmed = text.trimmingWhitespace()
    let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, let value = UInt64(digits) else { return nil }
    let unit = trimmed.dropFirst(digits.count).uppercased()
    let shift: UInt64
    switch unit {
    case "", "M", "MB", "MIB": shift = 20
    case "K", "KB", "KIB": shift = 10
    case "G", "GB", "GIB": shift = 30
    case "T", "TB", "TIB": shift = 40
    case "B": shift = 0
    default: return nil
    }
    let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : result
}

extension String {
    func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
