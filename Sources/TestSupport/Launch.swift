import Foundation
import Synchronization

/// Starts `process`, one at a time in this test process. Foundation's `Process.run()` once crashed
/// (a bad read in its copy of the environment) while tests started programs side by side; starting
/// them one after another costs nothing measurable and rules that out.
public func launch(_ process: Process) throws {
    try launches.withLock { _ in try process.run() }
}

private let launches = Mutex(())
