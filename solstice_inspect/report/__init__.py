"""Static HTML: the offline view of a job (notebook fallback and saved reports)."""
