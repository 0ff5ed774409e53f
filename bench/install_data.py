"""Install the Debian packages whose real data the offline tasks read, where apt-get can.

    python -m bench.install_data          # install what is missing (root, or sudo without a password)
    python -m bench.install_data --check  # only say what is missing; exit 1 if anything is

Without apt-get, or without the rights to use it, it says which tasks will need their data given
by hand and exits 0: the suite still runs, and the tests of those tasks skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Debian package -> (a file it installs, the tasks that read it)
PACKAGES = {
    "wordnet-base": ("/usr/share/wordnet/data.noun", "wordnet"),
    "dataset-fashion-mnist": ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "fashion-mnist"),
    "libsword-utils": ("/usr/bin/mod2imp", "bible-en-es"),
    "sword-text-web": ("/usr/share/sword/mods.d/engWEB2015eb.conf", "bible-en-es"),
    "sword-text-sparv": ("/usr/share/sword/mods.d/spaRV1909eb.conf", "bible-en-es"),
}


def missing() -> list[str]:
    return [name for name, (path, _) in PACKAGES.items() if not Path(path).exists()]


def install(names: list[str]) -> str | None:
    """Install `names` with apt-get; None on success, else why not."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get is not available on this machine"
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "installing needs root, and sudo is not available"
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([*prefix, apt, "update", "-qq"], [*prefix, apt, "install", "-y", "-qq", *names]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            return f"{' '.join(command[len(prefix):len(prefix) + 2])} failed ({last})"
    return None


def main(argv: list[str] | None = None) -> int:
    from bench.core.config import command_parser
    from bench.core.errors import run_command

    description, _, examples = __doc__.strip().partition("\n\n")
    parser = command_parser("python -m bench.install_data", description, examples.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say what is missing; exit 1 if anything is")
    args = parser.parse_args(argv)
    return run_command(lambda: install_missing(args.check))


def install_missing(check: bool) -> int:
    needed = missing()
    if not needed:
        print("The Debian data packages are installed.")
        return 0
    tasks = sorted({PACKAGES[name][1] for name in needed})
    if check:
        print(f"Missing Debian data packages: {', '.join(needed)} (for {', '.join(tasks)}).")
        return 1
    print(f"Installing the Debian data packages {', '.join(needed)} (for {', '.join(tasks)})...", flush=True)
    why = install(needed)
    if why is None and not missing():
        print("Installed.")
        return 0
    print(
        f"warning: could not install {', '.join(needed)}: {why or 'they are still missing'}. "
        f"The tasks {', '.join(tasks)} need their data given by hand (--data-dir / --data-files); "
        f"their tests skip.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
