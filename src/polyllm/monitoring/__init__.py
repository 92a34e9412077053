"""Reading the stack's Prometheus: the `polyllm top` terminal view."""
