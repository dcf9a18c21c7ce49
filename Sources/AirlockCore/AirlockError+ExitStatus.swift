extension AirlockError {
    /// The exit status of `airlock` and `airlock-gate` for this error, from its code: the one
    /// place it is decided (docs/design.md §6). Usage errors 2; the shell's own 126/127 for a
    /// command that cannot be executed or found; `airlock run`'s other failures before the
    /// command ran 125; other commands' refusals (a code: not found, conflict, refused…) 1;
    /// Airlock's own failures (no code) 125.
    public func exitStatus(run: Bool = false) -> Int32 {
        switch code {
        case .commandNotExecutable?: return 126
        case .commandNotFound?: return 127
        case _ where run: return 125
        case .usage?: return 2
        case nil: return 125
        default: return 1
        }
    }
}
