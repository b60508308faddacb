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

import grp
import os
import pwd
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
# run as any operator and replace it.
GROUP_WRITABLE = 0o002
OPERATORS = "left4me"
SETPRIV = "/usr/bin/setpriv"


def steamcmd_argv(program: str, installation: Path, platform: str) -> list[str]:
    """The command line of one pass: anonymous login, the platform forced, everything validated."""
    return [program, "+@sSteamCmdForcePlatformType", platform, "+force_install_dir", str(installation),
            "+login", "anonymous", "+app_update", APP_ID, "validate", "+quit"]


class SteamCmd:
    """SteamCMD at an absolute path, installing into `installation`; on a real host never as root.

    SteamCMD is a closed, self-updating network client, and installation/ is
    a tree every operator may change (a symlink planted there would be
    followed): run as root, it could be made to write anywhere. So an
    executor running as root (the executor service) runs it as the operator
    who asked for the install or update (`setpriv`, that user with group
    left4me, a clean environment), and refuses one root asked for.
    """

    def __init__(self, program: str, installation: Path, never_as_root: bool = False):
        self.program = program
        self.installation = installation
        self.never_as_root = never_as_root

    def as_user(self, requested_by: str) -> list[str]:
        """What SteamCMD's command line is prefixed with to run as `requested_by` (nothing: as this process)."""
        if not self.never_as_root or os.geteuid() != 0:
            return []
        try:
            user = pwd.getpwnam(requested_by)
            operators = grp.getgrnam(OPERATORS)
        except KeyError:
            user = None
        if user is None or user.pw_uid == 0 or (requested_by not in operators.gr_mem
                                                  and user.pw_gid != operators.gr_gid):
            raise HostError(f"SteamCMD never runs as root, and {requested_by!r} is not an operator (a member of group "
                            f"{OPERATORS}) it could run as: ask for the install or update as an operator")
        return [SETPRIV, f"--reuid={user.pw_uid}", f"--regid={operators.gr_gid}", "--init-groups", "--reset-env",
                "--"]

    def check(self, io: StepIO, requested_by: str) -> None:
        """SteamCMD must be an executable file given by absolute path, the installation a directory, and the user
        it would run as not root."""
        prefix = self.as_user(requested_by)
        if not os.path.isabs(self.program):
            raise HostError(f"steamcmd {self.program!r}: give it by absolute path (--steamcmd)")
        if not os.path.isfile(self.program) or not os.access(self.program, os.X_OK):
            raise HostError(f"steamcmd {self.program}: no executable file there; install Debian's `steamcmd` "
                            f"package (non-free) or Valve's tarball, and give its path with --steamcmd")
        if not self.installation.is_dir() or self.installation.is_symlink():
            raise HostError(f"{self.installation} is not a directory: run scripts/host/install first")
        who = f" as {requested_by}" if prefix else ""
        io.say(f"{self.program} will install app {APP_ID} into {self.installation}{who}")

    def install(self, io: StepIO, requested_by: str) -> None:
        """Both passes, Windows then Linux; the first that fails ends the install with SteamCMD's own words."""
        prefix = self.as_user(requested_by)
        for platform in PLATFORMS:
            argv = [*prefix, *steamcmd_argv(self.program, self.installation, platform)]
            io.say(f"$ {' '.join(argv)}")
            result = run(argv, io, timeout=STEAMCMD_TIMEOUT, umask=GROUP_WRITABLE)
            succeeded = any(line.strip() == SUCCESS for line in result.stdout)
            if result.returncode != 0 or not succeeded:
                said = next((line.strip() for line in reversed(result.stdout) if line.strip().upper()
                             .startswith("ERROR")), None)
                raise HostError(f"steamcmd's {platform} pass exited with status {result.returncode} "
                                f"{'without' if not succeeded else 'after'} {SUCCESS!r}"
                                + (f": {said}" if said else ""), (result.stdout + result.stderr)[-STDERR_TAIL:])
