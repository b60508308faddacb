"""How much the executor does at once: light to import, so the CLI's help can name the default."""

# How many commands run at once by default. Their steps mostly wait (on systemctl, on a server's first A2S
# answer), so the bound is there against a runaway fleet of threads, not to share the CPU.
DEFAULT_JOBS = 32
