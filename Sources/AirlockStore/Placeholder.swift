// Proposal store: coming next.
