"""Pins of the canary cell ``latest``, resolved from the package index when it runs.

The newest ai-dynamo (pre-releases included), the vLLM its ``vllm`` extra pins, and the newest
vLLM-Omni (pre-releases included) made for that vLLM or an older one (vLLM-Omni X.Y targets
vLLM X.Y; ai-dynamo's METADATA never names a vLLM-Omni); the cell's tests find out whether the
pair loads. ai-dynamo's requirements come from its wheel's METADATA; those that cannot be
built here (``CANNOT_BUILD``) are left out and ai-dynamo goes into ``.nodeps.txt``, as in the
dynamo-1.5+ cells; ``tests/requirements/latest.overrides.txt`` holds stand-ins for
requirements the index cannot satisfy yet. ``python tests/harness/latest_pins.py OUT_DIR``
(a Python with pip and packaging) prints the resolution.
"""

from __future__ import annotations

import datetime
import email.parser
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

HOST = "ai-dynamo"
EXTRA = "vllm"
#: Requirements of ai-dynamo that cannot be built on a machine without access to their hosts.
CANNOT_BUILD = {"aisimulate"}
#: Stand-ins for requirements the index cannot satisfy yet (kept by hand, may be absent).
OVERRIDES = Path(__file__).resolve().parents[1] / "requirements" / "latest.overrides.txt"


def pip(*args: str) -> str:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def index_versions(dist: str) -> list[Version]:
    """Every version of ``dist`` on the index, pre-releases included, newest first."""
    out = pip("index", "versions", "--pre", dist)
    match = re.search(r"Available versions:\s*(.+)", out)
    if not match:
        raise RuntimeError(f"pip index versions {dist}: no versions in {out!r}")
    return sorted((Version(v.strip()) for v in match.group(1).split(",")), reverse=True)


def wheel_requirements(dist: str, version: Version, python: str) -> list[Requirement]:
    """Requirements of ``dist==version`` that apply to extra ``EXTRA`` on ``python``."""
    with tempfile.TemporaryDirectory() as tmp:
        pip("download", "--no-deps", "--only-binary=:all:", "-d", tmp, f"{dist}=={version}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            meta = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    env = {"python_version": python, "python_full_version": f"{python}.0", "extra": EXTRA}
    wanted = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            wanted.append(req)
    return wanted


def exact(req: Requirement) -> Version:
    pins = [s.version for s in req.specifier if s.operator == "=="]
    if not pins:
        raise RuntimeError(f"{req} is not an exact pin")
    return Version(pins[0])


def resolve(python: str) -> dict:
    """The canary's versions and requirement lines."""
    host = index_versions(HOST)[0]
    reqs = wheel_requirements(HOST, host, python)
    vllm_req = next((r for r in reqs if canonicalize_name(r.name) == "vllm"), None)
    if vllm_req is None:
        raise RuntimeError(f"{HOST} {host} has no vllm requirement in its {EXTRA!r} extra")
    vllm = exact(vllm_req)
    omni = next(
        v for v in index_versions("vllm-omni") if (v.major, v.minor) <= (vllm.major, vllm.minor)
    )
    lines = []
    for req in reqs:
        name = canonicalize_name(req.name)
        if name in CANNOT_BUILD:
            continue
        if name == "vllm":  # the GPU extras (flashinfer, ...) play no part on CPU
            lines.append(f"vllm=={vllm}")
            continue
        req.marker = None
        lines.append(str(req))
    lines.append(f"vllm-omni=={omni}")
    return {
        "ai-dynamo": str(host),
        "vllm": str(vllm),
        "vllm-omni": str(omni),
        "left out": sorted(CANNOT_BUILD & {canonicalize_name(r.name) for r in reqs}),
        "requirements": lines,
        "resolved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


#: vLLM-Omni wheels whose METADATA the newest-vLLM lane reads at most (newest first).
MAX_OMNI_LOOKUPS = 3


def declared_vllm(omni: Version, python: str) -> str | None:
    """The vLLM specifier vLLM-Omni ``omni``'s wheel declares (None: it declares none)."""
    reqs = wheel_requirements("vllm-omni", omni, python)
    found = next((r for r in reqs if canonicalize_name(r.name) == "vllm"), None)
    return str(found.specifier) if found is not None else None


def newest_vllm_pair(python: str) -> dict:
    """The newest vLLM on the index and the newest vLLM-Omni that declares support for it:
    its wheel's ``vllm`` requirement admits that vLLM, or (a wheel naming no vLLM) its
    major.minor is vLLM's (vLLM-Omni X.Y targets vLLM X.Y)."""
    vllm = next(v for v in index_versions("vllm") if not v.is_prerelease)
    looked: list[str] = []
    for omni in index_versions("vllm-omni")[:MAX_OMNI_LOOKUPS]:
        declared = declared_vllm(omni, python)
        looked.append(f"vllm-omni {omni} declares vllm {declared or '(nothing)'}")
        if declared is not None:
            supported = SpecifierSet(declared).contains(vllm, prereleases=True)
        else:
            supported = (omni.major, omni.minor) == (vllm.major, vllm.minor)
        if supported:
            return {"vllm": str(vllm), "vllm-omni": str(omni), "looked": looked}
    return {"vllm": str(vllm), "vllm-omni": None, "looked": looked}


def changed(found: dict) -> list[str]:
    """What the newest-vLLM lane changes against the ai-dynamo-pinned pair."""
    pair = found["newest vllm"]
    if pair["vllm-omni"] is None:
        return [
            f"no vLLM-Omni among the newest {MAX_OMNI_LOOKUPS} declares support for vLLM "
            f"{pair['vllm']}; the lane is not run"
        ]
    notes = []
    for dist in ("vllm", "vllm-omni"):
        if pair[dist] != found[dist]:
            notes.append(f"{dist} {found[dist]} -> {pair[dist]}")
    return notes or ["nothing: ai-dynamo's pins are already the newest pair"]


def newest_vllm_lines(found: dict) -> list[str]:
    """``found``'s requirement lines with the newest vLLM pair swapped in."""
    pair = found["newest vllm"]
    swap = {"vllm": f"vllm=={pair['vllm']}", "vllm-omni": f"vllm-omni=={pair['vllm-omni']}"}
    return [
        swap.get(canonicalize_name(Requirement(line).name), line) for line in found["requirements"]
    ]


def write(folder: Path, cell: str, python: str) -> dict:
    """Write ``<cell>.txt`` and ``<cell>.nodeps.txt`` into ``folder``; return the resolution."""
    found = resolve(python)
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Canary: ai-dynamo {found['ai-dynamo']} (newest on the index) with vLLM-Omni "
        f"{found['vllm-omni']} (newest for vLLM {found['vllm']}). Resolved {found['resolved']}"
        f" from ai-dynamo's METADATA; left out (cannot be built here): "
        f"{', '.join(found['left out']) or 'nothing'}.\n"
    )
    (folder / f"{cell}.txt").write_text(header + "\n".join(found["requirements"]) + "\n")
    (folder / f"{cell}.nodeps.txt").write_text(f"{HOST}=={found['ai-dynamo']}\n")
    if OVERRIDES.exists():
        (folder / f"{cell}.overrides.txt").write_text(OVERRIDES.read_text())
    found["newest vllm"] = newest_vllm_pair(python)
    found["changed"] = changed(found)
    if found["newest vllm"]["vllm-omni"] is not None:
        pair = f"{cell}-vllm"
        (folder / f"{pair}.txt").write_text(
            f"# Canary, newest vLLM: {'; '.join(found['changed'])}.\n"
            + "\n".join(newest_vllm_lines(found))
            + "\n"
        )
        (folder / f"{pair}.nodeps.txt").write_text(f"{HOST}=={found['ai-dynamo']}\n")
        if OVERRIDES.exists():
            (folder / f"{pair}.overrides.txt").write_text(OVERRIDES.read_text())
    return found


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    result = write(out, "latest", sys.argv[2] if len(sys.argv) > 2 else "3.11")
    print(json.dumps({k: v for k, v in result.items() if k != "requirements"}))
    print((out / "latest.txt").read_text())
    if (out / "latest-vllm.txt").exists():
        print((out / "latest-vllm.txt").read_text())
