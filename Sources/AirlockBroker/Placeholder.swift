// Broker: coming next.
