import Glibc

/// Wall-clock times as Airlock records them: UTC, ISO 8601 with milliseconds.
public enum Clock {
    public static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return format(seconds: time.tv_sec, milliseconds: Int(time.tv_nsec / 1_000_000))
    }

    /// SigV4's X-Amz-Date form: 20260101T120000Z.
    public static func amzDate() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format4: Int(parts.tm_year) + 1900) + pad(Int(parts.tm_mon) + 1) + pad(Int(parts.tm_mday)) + "T"
            + pad(Int(parts.tm_hour)) + pad(Int(parts.tm_min)) + pad(Int(parts.tm_sec)) + "Z"
    }

    public static func format(seconds: Int, milliseconds: Int) -> String {
        var value = seconds
        var parts = tm()
        gmtime_r(&value, &parts)
        let ms = String(milliseconds)
        return String(format4: Int(parts.tm_year) + 1900) + "-" + pad(Int(parts.tm_mon) + 1) + "-" + pad(Int(parts.tm_mday))
            + "T" + pad(Int(parts.tm_hour)) + ":" + pad(Int(parts.tm_min)) + ":" + pad(Int(parts.tm_sec)) + "."
            + String(repeating: "0", count: 3 - ms.count) + ms + "Z"
    }

    /// Seconds since the epoch, with fractions.
    public static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    public static func epochSeconds() -> Int { Int(time(nil)) }

    /// Wall-clock milliseconds since 1970: execution leases are compared in it across hosts.
    public static func epochMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec / 1_000_000)
    }

    static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

extension String {
    init(format4 value: Int) {
        let text = "\(value)"
        self = String(repeating: "0", count: Swift.max(0, 4 - text.count)) + text
    }
}
