"""Runs a command under an approximation of systemd/spd.service's sandbox, without systemd.

PID 1 on the test machines is not systemd, so `systemd-run` cannot start the unit. This does by
hand what the unit's settings make systemd do, with the same kernel mechanisms:

- seccomp (libseccomp through ctypes), from the unit's own lines: SystemCallFilter= (groups as
  `systemd-analyze syscall-filter` lists them), SystemCallErrorNumber=, MemoryDenyWriteExecute=
  (no mmap with PROT_WRITE|PROT_EXEC, no mprotect/pkey_mprotect to PROT_EXEC, no shmat
  SHM_EXEC), RestrictAddressFamilies= (socket() of other families fails) and
  RestrictNamespaces=yes (no namespace flags to clone/unshare, no setns, clone3 is ENOSYS so
  glibc falls back to clone, as systemd does), NoNewPrivileges=;
- `unshare` + `mount`: a private /proc mounted hidepid=invisible,subset=pid (ProtectProc=invisible,
  ProcSubset=pid) in a new PID namespace, the root file system read-only but for the state
  directory (ProtectSystem=strict, StateDirectory=);
- `setpriv`: an unprivileged UID from DynamicUser='s range with no capabilities and an empty
  bounding set (DynamicUser=, CapabilityBoundingSet=, AmbientCapabilities=).

Not emulated: PrivateUsers=, PrivateTmp=, PrivateDevices=, ProtectHome=, ProtectKernel*=,
ProtectClock=/ProtectHostname= beyond the syscall filter, LockPersonality=, RestrictRealtime=
beyond the filter (@resources). Usage: `python tests/sandbox.py UNIT STATE_DIR -- COMMAND...`
(as root); `python tests/sandbox.py --seccomp UNIT -- COMMAND...` applies only the filter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

SANDBOX_UID = 61234  # inside DynamicUser='s range 61184-65519
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
AF_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
SPECIAL = {"mmap", "mprotect", "pkey_mprotect", "shmat", "socket", "clone", "clone3", "unshare", "setns"}

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 4, 7


def scmp_act_errno(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, values in order (repeated keys accumulate)."""
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups() -> dict[str, list[str]]:
    """`systemd-analyze syscall-filter`: group name -> members (syscalls and nested @groups)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True,
                         text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#") and line.startswith(" "):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found |= expand(groups.get(name, []), groups) if name.startswith("@") else {name}
    return found


def allowed_syscalls(settings: dict[str, list[str]]) -> set[str]:
    """The allow-list the unit's SystemCallFilter= lines leave, applied in order as systemd does."""
    groups = syscall_groups()
    allowed: set[str] | None = None
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), groups)
        if deny:
            allowed = (allowed or set()) - names
        else:
            allowed = (allowed or set()) | names
    if allowed is None:
        raise SystemExit("the unit has no SystemCallFilter= allow-list")
    return allowed


def load_filter(settings: dict[str, list[str]]) -> None:
    """Builds and loads the seccomp filter for this process and what it executes."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    error_name = (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1]
    ctx = lib.seccomp_init(scmp_act_errno(getattr(errno, error_name)))

    def rule(action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a syscall of this architecture
        array = (ScmpArgCmp * max(len(cmps), 1))(*[ScmpArgCmp(*c) for c in cmps])
        if lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array) < 0:
            raise SystemExit(f"seccomp rule for {name} {cmps} failed")

    allowed = allowed_syscalls(settings)
    for name in sorted(allowed - SPECIAL):
        rule(SCMP_ACT_ALLOW, name)
    deny_wx = settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
    if deny_wx:  # any protection but both PROT_WRITE and PROT_EXEC
        for prot in (0, PROT_WRITE, PROT_EXEC):
            rule(SCMP_ACT_ALLOW, "mmap", (2, SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, prot))
    else:
        rule(SCMP_ACT_ALLOW, "mmap")
    for name in ("mprotect", "pkey_mprotect"):
        if deny_wx:
            rule(SCMP_ACT_ALLOW, name, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
        elif name in allowed:
            rule(SCMP_ACT_ALLOW, name)
    if "shmat" in allowed:
        rule(SCMP_ACT_ALLOW, "shmat", *([(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, 0)] if deny_wx else []))
    families = " ".join(settings.get("RestrictAddressFamilies", [])).split()
    for family in families or ["*"]:
        if family == "*":
            rule(SCMP_ACT_ALLOW, "socket")
        else:
            rule(SCMP_ACT_ALLOW, "socket", (0, SCMP_CMP_EQ, AF_FAMILIES[family], 0))
    no_namespaces = settings.get("RestrictNamespaces", ["no"])[-1] == "yes"
    for name in ("clone", "unshare"):
        rule(SCMP_ACT_ALLOW, name, *([(0, SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS, 0)] if no_namespaces else []))
    rule(scmp_act_errno(errno.ENOSYS) if no_namespaces else SCMP_ACT_ALLOW, "clone3")
    if not no_namespaces:
        rule(SCMP_ACT_ALLOW, "setns")
    if lib.seccomp_load(ctx) < 0:  # sets no_new_privs itself (SCMP_FLTATR_CTL_NNP)
        raise SystemExit(f"seccomp_load failed: {os.strerror(ctypes.get_errno())}")


def expose_interpreter(scratch: Path) -> str:
    """Shell lines that let the service's UID reach this Python when it lives under a private
    folder (pyenv in /root, 0700): a real install uses /opt/spd/venv, outside any home."""
    real = Path(os.path.realpath(sys.executable))
    private = next((a for a in reversed(real.parents) if not os.stat(a).st_mode & 0o001), None)
    if private is None:
        return ""
    keep = real.parents[len(real.parents) - len(private.parts) - 1]  # the child of `private` to keep
    return (f'mkdir -p "{scratch}"; mount --bind "{keep}" "{scratch}"; '
            f'mount -t tmpfs -o mode=0755 tmpfs "{private}"; mkdir -p "{keep}"; '
            f'mount --bind "{scratch}" "{keep}"; ')


def sandbox_command(unit: Path, state_dir: Path, command: list[str]) -> list[str]:
    """The command line that runs `command` inside the emulated sandbox (needs root)."""
    script = (
        'set -e; mount -t proc -o hidepid=invisible,subset=pid proc /proc; '
        + expose_interpreter(state_dir.parent / "interpreter") +
        f'mount --bind "{state_dir}" "{state_dir}"; mount -o remount,bind,ro /; '
        f'exec setpriv --reuid={SANDBOX_UID} --regid={SANDBOX_UID} --clear-groups '
        '--bounding-set=-all --inh-caps=-all --no-new-privs "$@"'
    )
    return ["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script, "sh",
            sys.executable, str(Path(__file__).resolve()), "--seccomp", str(unit), "--", *command]


def available() -> str | None:
    """Why the sandbox cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (unshare, mount, setpriv)"
    for tool in ("unshare", "setpriv", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if ctypes.util.find_library("seccomp") is None:
        return "libseccomp is not installed"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare fails here: {probe.stderr.decode().strip()}"
    return None


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    if options[0] == "--seccomp":
        load_filter(unit_settings(Path(options[1])))
        os.execvp(command[0], command)
    os.execvp("unshare", sandbox_command(Path(options[0]), Path(options[1]), command))


if __name__ == "__main__":
    main(sys.argv[1:])
