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

    /// Reads back what `now()` wrote (2026-01-01T12:00:00.000Z) as epoch milliseconds.
    public static func epochMilliseconds(parsing text: String) -> Int64? {
        let digits = Array(text.utf8)
        guard digits.count == 24, digits[4] == 0x2D, digits[7] == 0x2D, digits[10] == 0x54, digits[13] == 0x3A,
              digits[16] == 0x3A, digits[19] == 0x2E, digits[23] == 0x5A else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in digits[range] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), let ms = number(20..<23) else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        return Int64(timegm(&parts)) * 1000 + Int64(ms)
    }

    static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

extension String {
    init(format4 value: Int) {
        let text = "\(value)"
        self = String(repeating: "0", count: Swift.max(0, 4 - text.count)) + text
    }
}
