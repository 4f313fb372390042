# Empty system rules: the port stub needs none (port-check.sh).
