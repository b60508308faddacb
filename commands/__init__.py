"""Commands decide and execute: what a requested command does, and the machinery that carries it out.

- `domain/`: the rules, free of I/O: specs, names, what a command does in a
  state (`decide`) and the host steps it plans.
- `service/`: the application: appending commands, the executor that runs
  them against the host adapters, observations from the journal.
- `cli/`: the click edge and what people see: options, progress, tables,
  one line and an exit code per error.
"""
