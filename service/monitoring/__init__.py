"""What operators and their tools read: Prometheus metrics, liveness and readiness."""
