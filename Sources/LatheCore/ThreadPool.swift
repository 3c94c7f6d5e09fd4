#if canImport(Glibc)
import Glibc
#endif

/// What a kernel gets from the session it runs in.
public struct RunContext: @unchecked Sendable {
    /// Start of the scratch: `workspaceSize` bytes per thread of `pool`, one block after the other.
    public let workspace: UnsafeMutableRawPointer
    /// Bytes of scratch reserved for each thread.
    public let workspaceStride: Int
    /// The session's threads (one thread: everything runs on the caller).
    public let pool: ThreadPool

    public init(workspace: UnsafeMutableRawPointer, workspaceStride: Int, pool: ThreadPool) {
        self.workspace = workspace
        self.workspaceStride = workspaceStride
        self.pool = pool
    }

    /// A context without scratch (a dangling, aligned pointer) on the calling thread, for kernels
    /// that need none.
    public static let serial = RunContext(workspace: UnsafeMutableRawPointer(bitPattern: 64)!,
                                          workspaceStride: 0, pool: .serial)

    /// Scratch of thread `lane` (`0..<pool.threadCount`).
    public func workspace(lane: Int) -> UnsafeMutableRawPointer { workspace + lane * workspaceStride }

    /// Splits items `0..<count` into one contiguous range per lane (at most `count` lanes) and runs
    /// `body(range, scratch)` for each on that lane's scratch; with one lane, one call on the caller.
    public func forEachRange(_ count: Int, _ body: (Range<Int>, UnsafeMutableRawPointer) -> Void) {
        let lanes = min(pool.threadCount, count)
        if lanes <= 1 {
            if count > 0 { body(0..<count, workspace) }
            return
        }
        let perLane = (count + lanes - 1) / lanes
        pool.parallelFor(lanes) { lane in
            let range = lane * perLane..<min(count, (lane + 1) * perLane)
            if !range.isEmpty { body(range, workspace(lane: lane)) }
        }
    }

    /// A context with `bytes` of fresh scratch on one thread, for running a kernel outside a session.
    public static func withScratch<R>(_ bytes: Int, _ body: (RunContext) throws -> R) rethrows -> R {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        defer { memory.deallocate() }
        return try body(RunContext(workspace: memory, workspaceStride: bytes, pool: .serial))
    }
}

/// A fixed set of threads that split a loop between them. Workers sleep on a condition variable
/// between jobs (no spinning). The caller is lane 0 and works too; lane `t` runs items
/// `t, t + threadCount, ...`, so the assignment (and therefore any result) is deterministic.
public final class ThreadPool: @unchecked Sendable {
    /// Lanes, counting the calling thread.
    public let threadCount: Int

    /// The one-thread pool: `parallelFor` is a plain loop.
    public static let serial = ThreadPool(threads: 1)

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when a job starts or the pool stops.
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Signalled when the last worker finishes a job.
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var workers: [pthread_t] = []
    /// Bumped for each job; a worker runs a job once per generation.
    private var generation = 0
    private var pending = 0
    private var stopping = false
    private var job: ((Int) -> Void)?
    private var itemCount = 0

    /// Starts `threads - 1` worker threads (at least one lane).
    public init(threads: Int) {
        threadCount = max(1, threads)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        for lane in 1..<threadCount {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(WorkerStart(pool: self, lane: lane)).toOpaque()
            if pthread_create(&thread, nil, { raw in
                let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                start.pool.workerLoop(lane: start.lane)
                return nil
            }, context) == 0 {
                workers.append(thread)
            } else {
                Unmanaged<WorkerStart>.fromOpaque(context).release()
            }
        }
    }

    /// Stops and joins the workers (run by `deinit`; workers do not keep the pool alive).
    private func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for thread in workers { pthread_join(thread, nil) }
        workers.removeAll()
    }

    deinit {
        shutdown()
        pthread_cond_destroy(wake)
        pthread_cond_destroy(done)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        done.deallocate()
        mutex.deallocate()
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the lanes; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        let lanes = min(workers.count + 1, count)
        if lanes <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            pthread_mutex_lock(mutex)
            job = body
            itemCount = count
            pending = workers.count
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
            for i in stride(from: 0, to: count, by: workers.count + 1) { body(i) }
            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(done, mutex) }
            job = nil
            pthread_mutex_unlock(mutex)
        }
    }

    private func workerLoop(lane: Int) {
        var seen = 0
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen && !stopping { pthread_cond_wait(wake, mutex) }
            if stopping { break }
            seen = generation
            let body = job!, count = itemCount, step = workers.count + 1
            pthread_mutex_unlock(mutex)
            for i in stride(from: lane, to: count, by: step) { body(i) }
            pthread_mutex_lock(mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(done) }
        }
        pthread_mutex_unlock(mutex)
    }
}

/// What a new worker thread needs to know.
private final class WorkerStart {
    /// Unretained: the pool's deinit joins its workers before the pool goes away.
    unowned(unsafe) let pool: ThreadPool
    let lane: Int
    init(pool: ThreadPool, lane: Int) { self.pool = pool; self.lane = lane }
}
