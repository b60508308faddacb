"""The lifecycle's rules, free of I/O: specs, names, the decision on each command and the steps it plans."""
