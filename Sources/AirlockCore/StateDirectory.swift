/// Where Airlock keeps its state (proposals, audit log, agent homes), docs/design.md §6:
/// `--state-dir`, else `$AIRLOCK_STATE_DIR`, else `$XDG_STATE_HOME/airlock`, else
/// `~/.local/state/airlock`. Pure: the caller passes the environment and home.
public enum StateDirectory {
    public static func resolve(explicit: String?, environment: [String: String], home: String) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let fromEnv = environment["AIRLOCK_STATE_DIR"], !fromEnv.isEmpty { return fromEnv }
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/airlock" }
        return home + "/.local/state/airlock"
    }
}
