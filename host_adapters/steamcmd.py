"""SteamCMD, filling and updating the shared installation with the L4D2 dedicated server (app 222860).

Since November 2024 SteamCMD refuses the Linux depot of 222860 to anonymous
logins ("Invalid platform", ValveSoftware/steam-for-linux#11522). The
workaround the community settled on (LinuxGSM #4754, the Pterodactyl and
Pelican eggs) is two passes into the same directory: the Windows platform
first, which brings the game's content, then Linux, which adds the Linux
binaries (srcds_run, srcds_linux). Both pass `validate`, so a file changed
in the installation by hand is put back too.

SteamCMD's exit status is not to be trusted (it exits 0 after some
failures), so a pass counts only when it exits 0 *and* prints its
"Success! App '222860' fully installed." line.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HostError
from .protocols import StepIO
from .runner import STDERR_TAIL, run

APP_ID = "222860"
PLATFORMS = ("windows", "linux")
DEFAULT_STEAMCMD = "/usr/games/steamcmd"  # Debian's non-free package `steamcmd`
# A first install downloads ~10 GB; SteamCMD prints its progress all along, so a hang shows, but never waits forever.
STEAMCMD_TIMEOUT = 4 * 3600.0
SUCCESS = f"Success! App '{APP_ID}' fully installed."
# installation/ is setgid group left4me: what SteamCMD writes stays writable by the group, so the next update may
# run as any operator (or as root) and replace it.
GROUP_WRITABLE = 0o002


def steamcmd_argv(program: str, installation: Path, platform: str) -> list[str]:
    """The command line of one pass: anonymous login, the platform forced, everything validated."""
    return [program, "+@sSteamCmdForcePlatformType", platform, "+force_install_dir", str(installation),
            "+login", "anonymous", "+app_update", APP_ID, "validate", "+quit"]


class SteamCmd:
    """SteamCMD at an absolute path, run as this process's user, installing into `installation`."""

    def __init__(self, program: str, installation: Path):
        self.program = program
        self.installation = installation

    def check(self, io: StepIO) -> None:
        """SteamCMD must be an executable file given by absolute path, and the installation a directory."""
        if not os.path.isabs(self.program):
            raise HostError(f"steamcmd {self.program!r}: give it by absolute path (--steamcmd)")
        if not os.path.isfile(self.program) or not os.access(self.program, os.X_OK):
            raise HostError(f"steamcmd {self.program}: no executable file there; install Debian's `steamcmd` "
                            f"package (non-free) or Valve's tarball, and give its path with --steamcmd")
        if not self.installation.is_dir() or self.installation.is_symlink():
            raise HostError(f"{self.installation} is not a directory: run scripts/host/install first")
        io.say(f"{self.program} will install app {APP_ID} into {self.installation}")

    def install(self, io: StepIO) -> None:
        """Both passes, Windows then Linux; the first that fails ends the install with SteamCMD's own words."""
        for platform in PLATFORMS:
            argv = steamcmd_argv(self.program, self.installation, platform)
            io.say(f"$ {' '.join(argv)}")
            result = run(argv, io, timeout=STEAMCMD_TIMEOUT, umask=GROUP_WRITABLE)
            succeeded = any(line.strip() == SUCCESS for line in result.stdout)
            if result.returncode != 0 or not succeeded:
                said = next((line.strip() for line in reversed(result.stdout) if line.strip().upper()
                             .startswith("ERROR")), None)
                raise HostError(f"steamcmd's {platform} pass exited with status {result.returncode} "
                                f"{'without' if not succeeded else 'after'} {SUCCESS!r}"
                                + (f": {said}" if said else ""), (result.stdout + result.stderr)[-STDERR_TAIL:])
