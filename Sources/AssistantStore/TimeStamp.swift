import Foundation

/// Time stamps as the store's columns hold them: the text GRDB writes for a `Date`,
/// "yyyy-MM-dd HH:mm:ss.SSS" in UTC, so that old and new rows sort and compare alike.
///
/// Written by hand: GRDB formats a `Date` with one shared `DateFormatter`, which cost about 2% of a
/// reply's CPU and serialises the threads that commit at once behind its lock.
enum TimeStamp {
    static func text(_ date: Date) -> String {
        // The nearest whole millisecond, as the formatter rounds.
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (days, inDay) = floorDivision(milliseconds, 86_400_000)
        let (year, month, day) = civil(days)
        var bytes = [UInt8](repeating: 0, count: 23)
        func put(_ value: Int64, _ width: Int, at start: Int) {
            var value = value
            for index in stride(from: start + width - 1, through: start, by: -1) {
                bytes[index] = 0x30 + UInt8(value % 10)
                value /= 10
            }
        }
        put(year, 4, at: 0)
        put(month, 2, at: 5)
        put(day, 2, at: 8)
        put(inDay / 3_600_000, 2, at: 11)
        put(inDay / 60_000 % 60, 2, at: 14)
        put(inDay / 1000 % 60, 2, at: 17)
        put(inDay % 1000, 3, at: 20)
        (bytes[4], bytes[7], bytes[10], bytes[13], bytes[16], bytes[19]) = (0x2D, 0x2D, 0x20, 0x3A, 0x3A, 0x2E)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let remainder = value % divisor
        return remainder < 0 ? (value / divisor - 1, remainder + divisor) : (value / divisor, remainder)
    }

    /// Year, month and day of a day counted from 1970-01-01 (the proleptic Gregorian calendar,
    /// Howard Hinnant's `civil_from_days`).
    private static func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
