"""The per-process runtime: connections and their events, the hub, presence, history and inbox delivery."""
